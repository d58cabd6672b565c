/**
 * Traefik's file provider reads TLS certificates from a dynamic configuration
 * file (tls.certificates: certFile/keyFile pairs) and watches it. Paths are
 * written as JSON strings, which are valid YAML double-quoted scalars and TOML
 * basic strings alike, so no path can break out of its value.
 */
export function dynamicConfig(format: 'yaml' | 'toml', certFile: string, keyFile: string): string {
  const header = '# Written by certctl; the next deploy rewrites this file.\n';
  if (format === 'yaml') {
    return `${header}tls:\n  certificates:\n    - certFile: ${JSON.stringify(certFile)}\n      keyFile: ${JSON.stringify(keyFile)}\n`;
  }
  return `${header}[[tls.certificates]]\n  certFile = ${JSON.stringify(certFile)}\n  keyFile = ${JSON.stringify(keyFile)}\n`;
}
