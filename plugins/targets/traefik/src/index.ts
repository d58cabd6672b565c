import { defineFileTarget, leafChainBundle, type DeployFile } from '@certctl/sdk/deploy';
import { traefikConfigProblem, traefikFiles } from './config.js';
import { dynamicConfig } from './dynamic-config.js';

/**
 * Traefik (file provider): writes the certificate (leaf + chain) and key into
 * cert_dir, plus a dynamic configuration file naming them under
 * tls.certificates. Traefik watches the directory and picks the pair up without
 * a reload; validate/reload commands are optional for setups that want them.
 */
export default defineFileTarget({
  pathFields: { cert_dir: true },
  validateCommand: { field: 'validate_command', default: null },
  reloadCommand: { field: 'reload_command', default: null },
  needsKey: true,
  checkConfig: traefikConfigProblem,
  files({ request, keyPem, config }) {
    const f = traefikFiles(config);
    const files: DeployFile[] = [
      { path: f.certFile, content: leafChainBundle(request.certificatePem, request.chainPem), mode: 0o644 },
      { path: f.keyFile, content: keyPem!, mode: 0o600 },
    ];
    // The dynamic file goes last: Traefik reloads on it, and by then the pair it names is in place.
    if (f.dynamicFile) files.push({ path: f.dynamicFile.path, content: dynamicConfig(f.dynamicFile.format, f.certFile, f.keyFile), mode: 0o644 });
    return files;
  },
});
