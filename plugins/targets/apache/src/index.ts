import { chainBundle, defineFileTarget, leafChainBundle, type DeployFile } from '@certctl/sdk/deploy';

/**
 * Apache httpd (2.4.8 and later): SSLCertificateFile may hold the certificate
 * followed by its chain; older setups keep the chain in SSLCertificateChainFile,
 * which `chain_path` serves. `apachectl configtest` checks the configuration
 * before `apachectl graceful` restarts the children without dropping connections.
 */
export default defineFileTarget({
  pathFields: { cert_path: true, key_path: true, chain_path: false },
  validateCommand: { field: 'validate_command', default: ['/usr/sbin/apachectl', 'configtest'] },
  reloadCommand: { field: 'reload_command', default: ['/usr/sbin/apachectl', 'graceful'] },
  needsKey: true,
  files({ request, keyPem, paths }) {
    const separateChain = Boolean(paths.chain_path);
    const files: DeployFile[] = [
      { path: paths.cert_path!, content: separateChain ? leafChainBundle(request.certificatePem) : leafChainBundle(request.certificatePem, request.chainPem) },
      { path: paths.key_path!, content: keyPem!, mode: 0o600 },
    ];
    // SSLCertificateChainFile must name a readable file even when the chain is empty.
    if (separateChain) files.push({ path: paths.chain_path!, content: chainBundle(request.chainPem) });
    return files;
  },
});
