import { ref } from 'vue';
import { ApiError, errorText } from './client';

/**
 * State for a button or form that calls the kernel: a busy flag, the error text,
 * and the field details of a VALIDATION_FAILED answer (shown beside the fields).
 * `run` clears the previous error before it starts.
 */
export function useApiCall() {
  const busy = ref(false);
  const error = ref<string | null>(null);
  const details = ref<ApiError['details']>([]);

  async function run(fn: () => Promise<unknown>): Promise<void> {
    error.value = null;
    details.value = [];
    busy.value = true;
    try {
      await fn();
    } catch (err) {
      error.value = errorText(err);
      if (err instanceof ApiError) details.value = err.details;
    } finally {
      busy.value = false;
    }
  }

  return { busy, error, details, run };
}
