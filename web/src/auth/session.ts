import { computed, reactive } from 'vue';
import { ApiError, request, setApiKey, setUnauthorizedHandler } from '../api/client';

export interface Me {
  actor: string;
  actor_type: string;
  name: string;
  key_id: string | null;
  roles: { role_id: string; role: string; scope_type: string; scope_id: string }[];
  effective_permissions: string[];
  scoped_grants: { permission: string; scope_type: string; scope_id: string }[];
  [k: string]: unknown;
}

const STORAGE_KEY = 'certctl:api-key';

/**
 * The signed-in identity. The key lives in sessionStorage only (gone with the tab),
 * and what the UI offers follows /auth/me; the kernel still checks every call.
 */
export const session = reactive({
  key: null as string | null,
  me: null as Me | null,
  authType: 'api-key' as string,
  expired: false,
});

export const signedIn = computed(() => session.me !== null);

function storage(): Storage | null {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null;
  }
}

export async function login(key: string): Promise<Me> {
  const me = await request<Me>('/api/v1/auth/me', { key });
  session.key = key;
  session.me = me;
  session.expired = false;
  setApiKey(key);
  storage()?.setItem(STORAGE_KEY, key);
  return me;
}

export function logout(expired = false): void {
  session.key = null;
  session.me = null;
  session.expired = expired;
  setApiKey(null);
  storage()?.removeItem(STORAGE_KEY);
}

/** Restores a key from this tab's sessionStorage, or a keyless session when auth is off. */
export async function restoreSession(): Promise<boolean> {
  setUnauthorizedHandler(() => logout(true));
  try {
    const info = await request<{ auth_type: string }>('/api/v1/auth/info', { key: null });
    session.authType = info.auth_type;
    if (info.auth_type === 'none') {
      session.me = await request<Me>('/api/v1/auth/me', { key: null });
      return true;
    }
  } catch {
    // The info probe failing is not fatal; the login page will show the real error.
  }
  const key = storage()?.getItem(STORAGE_KEY);
  if (!key) return false;
  try {
    await login(key);
    return true;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) logout(true);
    return false;
  }
}

/** Permission check for affordances; the kernel remains the gate. */
export function can(permission: string): boolean {
  return session.me?.effective_permissions.includes(permission) ?? false;
}
