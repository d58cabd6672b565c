/**
 * PEM assembly for the file layouts servers expect: a leaf followed by its chain
 * (NGINX ssl_certificate, Apache SSLCertificateFile), the chain alone
 * (SSLCertificateChainFile), and one file with certificate, chain and private
 * key (HAProxy `crt`). Blocks are normalised (LF line ends, one trailing newline)
 * so that the same certificate always yields the same bytes, which is what the
 * pipeline's idempotency compares.
 */

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n[\s\S]*?-----END \1-----/g;

export interface PemBlock {
  label: string;
  text: string;
}

/** The PEM blocks in `text`, in order, each with LF line ends and a trailing newline. */
export function pemBlocks(text: string): PemBlock[] {
  const out: PemBlock[] = [];
  for (const m of String(text).matchAll(BLOCK)) {
    const body = m[0].replace(/\r\n/g, '\n').split('\n').map((l) => l.trim()).filter(Boolean).join('\n');
    out.push({ label: m[1], text: `${body}\n` });
  }
  return out;
}

function certificates(pems: string[], what: string): string[] {
  const blocks = pems.flatMap((p) => pemBlocks(p));
  const bad = blocks.find((b) => b.label !== 'CERTIFICATE');
  if (bad) throw new TypeError(`${what} holds a ${bad.label} block where only certificates belong`);
  const seen = new Set<string>();
  return blocks.map((b) => b.text).filter((t) => !seen.has(t) && seen.add(t));
}

/** The leaf certificate followed by its chain (duplicates dropped). */
export function leafChainBundle(certificatePem: string, chainPem: readonly string[] = []): string {
  const leaf = certificates([certificatePem], 'the certificate');
  if (!leaf.length) throw new TypeError('the certificate holds no PEM CERTIFICATE block');
  const chain = certificates([...chainPem], 'the chain').filter((c) => !leaf.includes(c));
  return [...leaf, ...chain].join('');
}

/** The chain certificates alone (empty string for none). */
export function chainBundle(chainPem: readonly string[]): string {
  return certificates([...chainPem], 'the chain').join('');
}

/** The private key block of `keyPem` (one block, any *PRIVATE KEY label). */
export function privateKeyBlock(keyPem: string): string {
  const keys = pemBlocks(keyPem).filter((b) => /PRIVATE KEY$/.test(b.label));
  if (keys.length !== 1) throw new TypeError(`the key file must hold exactly one PEM private key (found ${keys.length})`);
  return keys[0].text;
}

/** Certificate, chain, then private key in one file, as HAProxy's `crt` loads it. */
export function keyCertChainBundle(keyPem: string, certificatePem: string, chainPem: readonly string[] = []): string {
  return leafChainBundle(certificatePem, chainPem) + privateKeyBlock(keyPem);
}
