/**
 * Whether a private key belongs to a certificate, checked before any file is
 * written: some servers' config tests (Apache's configtest) do not load the key,
 * so a mismatch would only show when the reloaded server fails to start. Needs
 * node:crypto; in a runtime without it the check is skipped and the server's own
 * validation is the only gate.
 */
export async function keyPairProblem(certificatePem: string, keyPem: string): Promise<string | null> {
  let crypto: typeof import('node:crypto');
  try {
    crypto = await import('node:crypto');
  } catch {
    return null;
  }
  let cert: import('node:crypto').X509Certificate;
  let key: import('node:crypto').KeyObject;
  try {
    cert = new crypto.X509Certificate(certificatePem);
    key = crypto.createPrivateKey(keyPem);
  } catch {
    // Unparseable here (e.g. a passphrase-protected key): leave the verdict to the server's validate command.
    return null;
  }
  return cert.checkPrivateKey(key) ? null : 'the private key at keyPath does not belong to the certificate';
}
