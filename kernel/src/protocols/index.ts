export { protocolRoutes } from './routes.js';
export { ProtocolIssuanceOps } from './issuance-ops.js';
export { wantsClientCertificates } from './mounts.js';
