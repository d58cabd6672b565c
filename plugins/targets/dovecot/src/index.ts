import { chainBundle, defineFileTarget, leafChainBundle, type DeployFile } from '@certctl/sdk/deploy';

/**
 * Dovecot: the certificate (leaf + chain, or the leaf with a separate chain
 * file) and key go where `ssl_cert = <...` / `ssl_key = <...` point;
 * `doveconf -n` parses the configuration before `doveadm reload` makes Dovecot
 * read the files again. On any failure the previous files come back.
 */
export default defineFileTarget({
  pathFields: { cert_path: true, key_path: true, chain_path: false },
  validateCommand: { field: 'validate_command', default: ['/usr/bin/doveconf', '-n'] },
  reloadCommand: { field: 'reload_command', default: ['/usr/bin/doveadm', 'reload'] },
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
