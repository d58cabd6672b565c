import { defineFileTarget, keyCertChainBundle } from '@certctl/sdk/deploy';

/**
 * HAProxy: a `bind ... ssl crt <file>` loads one PEM holding the certificate, its
 * chain and the private key. `haproxy -c -f <cfg>` checks the configuration with
 * the new file; the reload command is the operator's (systemctl reload, or a
 * USR2 signal to the master process of a master-worker HAProxy).
 */
export default defineFileTarget({
  pathFields: { pem_path: true },
  validateCommand: { field: 'validate_command', default: ['/usr/sbin/haproxy', '-c', '-f', '/etc/haproxy/haproxy.cfg'] },
  reloadCommand: { field: 'reload_command', default: ['/usr/bin/systemctl', 'reload', 'haproxy'] },
  needsKey: true,
  files({ request, keyPem, paths }) {
    return [{ path: paths.pem_path!, content: keyCertChainBundle(keyPem!, request.certificatePem, request.chainPem), mode: 0o600 }];
  },
});
