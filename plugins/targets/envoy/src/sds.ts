/** The resource type of an Envoy TLS secret in the v3 API. */
export const SDS_SECRET_TYPE = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';

/**
 * A file-based SDS document (what a path_config_source points at): a
 * DiscoveryResponse-shaped object whose `resources` hold one Secret with a
 * tls_certificate that names the certificate chain and key files. Envoy re-reads
 * it when it is moved into place, which is how the pipeline's atomic rename writes.
 */
export function sdsDocument(secretName: string, certFile: string, keyFile: string): string {
  const doc = {
    resources: [
      {
        '@type': SDS_SECRET_TYPE,
        name: secretName,
        tls_certificate: {
          certificate_chain: { filename: certFile },
          private_key: { filename: keyFile },
        },
      },
    ],
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}
