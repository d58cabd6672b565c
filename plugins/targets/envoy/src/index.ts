import { chainBundle, defineFileTarget, leafChainBundle, type DeployFile } from '@certctl/sdk/deploy';
import { envoyConfigProblem, envoyFiles } from './config.js';
import { sdsDocument } from './sds.js';

/**
 * Envoy: writes the certificate chain and key (and optionally the CA chain alone)
 * into cert_dir, and optionally an SDS file naming them. Envoy watches the SDS
 * file (path_config_source, with watched_directory on cert_dir), so no reload is
 * needed; validate/reload commands are optional.
 */
export default defineFileTarget({
  pathFields: { cert_dir: true },
  validateCommand: { field: 'validate_command', default: null },
  reloadCommand: { field: 'reload_command', default: null },
  needsKey: true,
  checkConfig: envoyConfigProblem,
  files({ request, keyPem, config }) {
    const f = envoyFiles(config);
    const files: DeployFile[] = [
      { path: f.certFile, content: leafChainBundle(request.certificatePem, request.chainPem), mode: 0o644 },
      { path: f.keyFile, content: keyPem!, mode: 0o600 },
    ];
    if (f.chainFile) files.push({ path: f.chainFile, content: chainBundle(request.chainPem), mode: 0o644 });
    // SDS last: when Envoy sees it move, the files it names are already in place.
    if (f.sds) files.push({ path: f.sds.path, content: sdsDocument(f.sds.secretName, f.certFile, f.keyFile), mode: 0o644 });
    return files;
  },
});
