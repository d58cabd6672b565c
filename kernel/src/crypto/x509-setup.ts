// @peculiar/x509 needs the Reflect metadata API before it loads, and a WebCrypto
// provider; every crypto module imports x509 from here so both are in place.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };
