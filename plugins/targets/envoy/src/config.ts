import type { Json } from '@certctl/sdk';
import { checkPath, DeployConfigError } from '@certctl/sdk/deploy';

export interface EnvoyFiles {
  certFile: string;
  keyFile: string;
  chainFile: string | null;
  sds: { path: string; secretName: string } | null;
}

const FILE_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$/;
const SECRET_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;

/**
 * A plain file name inside cert_dir. Refusing separators (and so `..`) is the
 * path-traversal guard: every file the plugin writes is cert_dir + one name.
 */
function fileName(value: Json | undefined, what: string, fallback?: string): string {
  const name = value === undefined || value === null ? fallback : value;
  if (typeof name !== 'string' || !FILE_NAME.test(name)) throw new DeployConfigError(`${what} must be a plain file name (letters, digits, . _ -), not ${JSON.stringify(name)}`);
  return name;
}

/** The files in cert_dir this config names; throws DeployConfigError when unusable. */
export function envoyFiles(c: Readonly<Record<string, Json>>): EnvoyFiles {
  const dir = checkPath(c.cert_dir, 'cert_dir');
  const names = [fileName(c.cert_filename, 'cert_filename', 'cert.pem'), fileName(c.key_filename, 'key_filename', 'key.pem')];
  const chain = c.chain_filename === undefined || c.chain_filename === null ? null : fileName(c.chain_filename, 'chain_filename');
  if (chain) names.push(chain);
  let sds: EnvoyFiles['sds'] = null;
  const raw = c.sds_config;
  if (raw !== undefined && raw !== null) {
    if (typeof raw !== 'object' || Array.isArray(raw)) throw new DeployConfigError('sds_config must be an object { filename?, secret_name? }');
    const secretName = raw.secret_name ?? 'server_cert';
    if (typeof secretName !== 'string' || !SECRET_NAME.test(secretName)) throw new DeployConfigError('sds_config.secret_name must be 1-128 letters, digits or _ . : -');
    const name = fileName(raw.filename, 'sds_config.filename', 'sds.json');
    names.push(name);
    sds = { path: checkPath(`${dir}/${name}`, 'sds_config.filename'), secretName };
  }
  if (new Set(names).size !== names.length) throw new DeployConfigError('the certificate, key, chain and SDS file names must differ');
  return {
    certFile: checkPath(`${dir}/${names[0]}`, 'cert_filename'),
    keyFile: checkPath(`${dir}/${names[1]}`, 'key_filename'),
    chainFile: chain ? checkPath(`${dir}/${chain}`, 'chain_filename') : null,
    sds,
  };
}

export function envoyConfigProblem(c: Readonly<Record<string, Json>>): string | null {
  try {
    envoyFiles(c);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}
