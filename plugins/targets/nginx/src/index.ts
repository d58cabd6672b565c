import { chainBundle, defineFileTarget, leafChainBundle, type DeployFile } from '@certctl/sdk/deploy';

/**
 * NGINX: `ssl_certificate` takes the certificate followed by its chain in one
 * file and `ssl_certificate_key` the key. `nginx -t` checks the configuration
 * (with the new files) before `nginx -s reload` swaps workers gracefully; on any
 * failure the previous files come back.
 */
export default defineFileTarget({
  pathFields: { cert_path: true, key_path: true, chain_path: false },
  validateCommand: { field: 'validate_command', default: ['/usr/sbin/nginx', '-t'] },
  reloadCommand: { field: 'reload_command', default: ['/usr/sbin/nginx', '-s', 'reload'] },
  needsKey: true,
  files({ request, keyPem, paths }) {
    const files: DeployFile[] = [
      { path: paths.cert_path!, content: leafChainBundle(request.certificatePem, request.chainPem) },
      { path: paths.key_path!, content: keyPem!, mode: 0o600 },
    ];
    if (paths.chain_path && request.chainPem.length) files.push({ path: paths.chain_path, content: chainBundle(request.chainPem) });
    return files;
  },
});
