/**
 * The one error catalogue. Every error a client can see has a stable code here,
 * an HTTP status and a default message; handlers throw `AppError`s built from it
 * and one middleware turns them into `{"error":{"code","message"}}`.
 */
export const ERRORS = {
  // 400
  BAD_JSON: { status: 400, message: 'Request body is not valid JSON' },
  VALIDATION_FAILED: { status: 400, message: 'Request failed validation' },
  BAD_QUERY: { status: 400, message: 'Invalid query parameter' },
  BAD_CURSOR: { status: 400, message: 'Invalid pagination cursor' },
  UNSUPPORTED_SORT: { status: 400, message: 'Sort field is not allowed' },
  UNKNOWN_FIELD: { status: 400, message: 'Unknown field requested' },
  INVALID_STATE: { status: 409, message: 'Operation not allowed in the current state' },
  CSR_INVALID: { status: 400, message: 'The CSR cannot be parsed or its signature does not verify' },
  LEASE_LOST: { status: 409, message: 'The job is no longer leased to this agent (its lease expired or it was handed out again)' },
  // 401 / 403
  UNAUTHENTICATED: { status: 401, message: 'Missing or invalid API key' },
  FORBIDDEN: { status: 403, message: 'Permission denied' },
  BOOTSTRAP_CLOSED: { status: 410, message: 'Bootstrap is closed: an admin already exists' },
  BOOTSTRAP_DISABLED: { status: 404, message: 'Bootstrap is not enabled on this server' },
  BOOTSTRAP_TOKEN_INVALID: { status: 401, message: 'Invalid bootstrap token' },
  SELF_APPROVAL: { status: 403, message: 'The requester cannot decide their own request' },
  TARGET_MAPPING_FORBIDDEN: { status: 403, message: 'Changing a certificate\'s deployment targets needs the global target.manage permission' },
  // 404 / 405 / 409 / 413 / 415
  NOT_FOUND: { status: 404, message: 'Resource not found' },
  ROUTE_NOT_FOUND: { status: 404, message: 'No such route' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'Method not allowed' },
  CONFLICT: { status: 409, message: 'Resource already exists' },
  IN_USE: { status: 409, message: 'Resource is referenced by other resources' },
  APPROVAL_DECIDED: { status: 409, message: 'The approval request has already been decided' },
  APPROVAL_EXPIRED: { status: 409, message: 'The approval request expired; what it gated was cancelled' },
  APPROVAL_SUBJECT_CHANGED: { status: 409, message: 'The certificate no longer matches what the approval request was opened for' },
  ISSUANCE_JOB_OPEN: { status: 409, message: 'The certificate has an open issuance or renewal job; cancel the open job first' },
  ALREADY_REVOKED: { status: 409, message: 'The certificate is already revoked' },
  DIGEST_NOT_CONFIGURED: { status: 409, message: 'The digest is not configured (CERTCTL_DIGEST_ENABLED and an enabled e-mail notifier)' },
  ENV_MANAGED: { status: 409, message: 'This resource is managed by CERTCTL_* environment variables; change them and restart instead' },
  REFERENCE_NOT_FOUND: { status: 422, message: 'A referenced resource does not exist' },
  BODY_TOO_LARGE: { status: 413, message: 'Request body too large' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'Content-Type must be application/json' },
  // 429 / 5xx
  RATE_LIMITED: { status: 429, message: 'Too many requests' },
  NOT_READY: { status: 503, message: 'Service not ready' },
  INTERNAL: { status: 500, message: 'Internal server error' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

export interface ErrorDetail {
  path?: string;
  message: string;
}

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details?: ErrorDetail[];
  readonly headers?: Record<string, string>;

  constructor(code: ErrorCode, message?: string, opts: { details?: ErrorDetail[]; headers?: Record<string, string>; cause?: unknown } = {}) {
    super(message ?? ERRORS[code].message, { cause: opts.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.details = opts.details;
    this.headers = opts.headers;
  }

  toBody(): { error: { code: string; message: string; details?: ErrorDetail[] } } {
    const body: { code: string; message: string; details?: ErrorDetail[] } = {
      code: this.code.toLowerCase(),
      message: this.message,
    };
    if (this.details?.length) body.details = this.details;
    return { error: body };
  }
}

export const appError = (code: ErrorCode, message?: string, opts?: ConstructorParameters<typeof AppError>[2]) =>
  new AppError(code, message, opts);

/** Start-up failures: printed as one clear line, the process exits non-zero. */
export class StartupError extends Error {
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, opts);
    this.name = 'StartupError';
  }
}
