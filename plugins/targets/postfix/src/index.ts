import { chainBundle, defineFileTarget, leafChainBundle, type DeployFile } from '@certctl/sdk/deploy';

/**
 * Postfix: the certificate (leaf + chain, or the leaf with a separate chain
 * file) and key go where smtpd_tls_cert_file / smtpd_tls_key_file point;
 * `postfix check` checks the installation with the new files before
 * `postfix reload` makes the daemons load them. On any failure the previous
 * files come back. (The seeds' Postfix/Dovecot connector picks the server with a
 * `mode` field; here each server is its own plugin with its own defaults.)
 */
export default defineFileTarget({
  pathFields: { cert_path: true, key_path: true, chain_path: false },
  validateCommand: { field: 'validate_command', default: ['/usr/sbin/postfix', 'check'] },
  reloadCommand: { field: 'reload_command', default: ['/usr/sbin/postfix', 'reload'] },
  needsKey: true,
  files({ request, keyPem, paths }) {
    const files: DeployFile[] = [
      { path: paths.cert_path!, content: paths.chain_path ? leafChainBundle(request.certificatePem) : leafChainBundle(request.certificatePem, request.chainPem) },
      { path: paths.key_path!, content: keyPem!, mode: 0o600 },
    ];
    if (paths.chain_path) files.push({ path: paths.chain_path, content: chainBundle(request.chainPem) });
    return files;
  },
});
