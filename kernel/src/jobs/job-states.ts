export const JOB_TYPES = ['Issuance', 'Renewal', 'Deployment', 'Validation', 'Revocation'] as const;
export type JobType = (typeof JOB_TYPES)[number];

export const JOB_STATUSES = ['Pending', 'AwaitingCSR', 'AwaitingApproval', 'Running', 'Completed', 'Failed', 'Cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/** States a job can still leave. Only Pending is ever claimed by a worker. */
export const OPEN_JOB_STATUSES: readonly JobStatus[] = ['Pending', 'AwaitingCSR', 'AwaitingApproval', 'Running'];
export const TERMINAL_JOB_STATUSES: readonly JobStatus[] = ['Completed', 'Failed', 'Cancelled'];
export const CANCELLABLE_JOB_STATUSES: readonly JobStatus[] = ['Pending', 'AwaitingCSR', 'AwaitingApproval'];

/**
 * Every move a job can make. Running is entered only from Pending (the claim), and
 * AwaitingApproval moves on (to Pending, or AwaitingCSR when an agent makes the key)
 * only through an in-time approval by someone other than the requester; a rejection
 * or a timeout ends in Cancelled, so a refused job can never run.
 */
export const JOB_TRANSITIONS: Readonly<Record<JobStatus, readonly JobStatus[]>> = {
  Pending: ['Running', 'Cancelled'],
  AwaitingCSR: ['Pending', 'Cancelled'],
  AwaitingApproval: ['Pending', 'AwaitingCSR', 'Cancelled'],
  // Back to Pending on a retry, a retry_later outcome or an expired lease.
  Running: ['Completed', 'Failed', 'Pending'],
  Completed: [],
  Failed: [],
  Cancelled: [],
};

export interface JobRow {
  id: string;
  type: JobType;
  status: JobStatus;
  certificate_id: string | null;
  target_id: string | null;
  agent_id: string | null;
  payload: Record<string, unknown>;
  result: Record<string, unknown> | null;
  attempts: number;
  max_attempts: number;
  last_error: string | null;
  scheduled_at: Date;
  lease_owner: string | null;
  lease_expires_at: Date | null;
  approval_expires_at: Date | null;
  requested_by: string | null;
  started_at: Date | null;
  completed_at: Date | null;
  verification_status: string | null;
  verification_error: string | null;
  verified_at: Date | null;
  created_at: Date;
  updated_at: Date;
}
