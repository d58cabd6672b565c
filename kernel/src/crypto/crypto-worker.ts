/**
 * The crypto pool's worker script (runs from kernel/dist). It imports only the
 * kernel's own crypto modules -- never plugin code -- so CA keys handed to it
 * stay in threads no plugin shares. Failures come back as data with a code.
 */
import { signCertificate } from './certificate-sign.js';
import { CryptoError, type CryptoOutcome, type CryptoTask } from './crypto-types.js';
import { verifyCsr } from './csr-verify.js';
import { encodeCrl } from './crl-encoder.js';
import { issueOcspResponder } from './ocsp-responder-cert.js';
import { signOcspResponse } from './ocsp-response.js';

export default async function runCryptoTask(task: CryptoTask): Promise<CryptoOutcome<unknown>> {
  if (task?.op === 'batch') {
    if (!Array.isArray(task.tasks)) return { ok: false, code: 'bad_request', message: 'a batch needs a list of tasks' };
    const outcomes: CryptoOutcome<unknown>[] = [];
    // One after another: each task's failure is its own outcome; batches do not nest.
    for (const t of task.tasks) outcomes.push(t?.op === 'batch' ? { ok: false, code: 'bad_request', message: 'batches do not nest' } : await runCryptoTask(t));
    return { ok: true, value: outcomes };
  }
  try {
    switch (task?.op) {
      case 'verifyCsr':
        return { ok: true, value: await verifyCsr(task.csr) };
      case 'signCertificate':
        return { ok: true, value: await signCertificate(task.request, task.csrVerified === true) };
      case 'encodeCrl':
        return { ok: true, value: encodeCrl(task.request) };
      case 'issueOcspResponder':
        return { ok: true, value: issueOcspResponder(task.request) };
      case 'signOcspResponse':
        return { ok: true, value: signOcspResponse(task.request) };
      default:
        return { ok: false, code: 'bad_request', message: `unknown crypto task ${JSON.stringify((task as { op?: unknown })?.op)}` };
    }
  } catch (err) {
    if (err instanceof CryptoError) return { ok: false, code: err.code, message: err.message };
    return { ok: false, code: 'bad_request', message: (err as Error)?.message ?? String(err) };
  }
}
