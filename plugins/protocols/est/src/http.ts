import type { ProtocolHttpResponse } from '@certctl/sdk';

/** EST errors carry a short human-readable text/plain body (RFC 7030 4.2.3). */
export const textError = (status: number, message: string, headers: Record<string, string> = {}): ProtocolHttpResponse => ({
  status,
  headers: { 'Content-Type': 'text/plain; charset=utf-8', ...headers },
  body: `${message}\n`,
});

export const pkcs7Response = (base64Body: string): ProtocolHttpResponse => ({
  status: 200,
  headers: { 'Content-Type': 'application/pkcs7-mime; smime-type=certs-only', 'Content-Transfer-Encoding': 'base64' },
  body: base64Body,
});

/** The media type without parameters, lower-cased. */
export const mediaType = (value: string | undefined): string => (value ?? '').split(';')[0].trim().toLowerCase();
