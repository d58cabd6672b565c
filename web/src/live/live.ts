import { onBeforeUnmount, ref } from 'vue';
import { getApiKey } from '../api/client';
import { LiveClient, type LiveEvent, type LiveStatus } from './live-client';

let client: LiveClient | null = null;
export const liveStatus = ref<LiveStatus>('idle');

function wsUrl(): string {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}/api/v1/ws`;
}

/** The app-wide live connection, started after sign-in and stopped on sign-out. */
export function liveClient(): LiveClient {
  if (!client) {
    client = new LiveClient({ url: wsUrl(), getKey: getApiKey });
    client.onStatus((s) => { liveStatus.value = s; });
  }
  return client;
}

export function startLive(): void {
  liveClient().start();
}

export function stopLive(): void {
  client?.stop();
}

/**
 * Calls `refresh` when an event for one of the topics arrives (coalesced, so a burst
 * of job transitions costs one refetch) and after every reconnect.
 */
export function useLiveRefresh(topics: string[] | ((e: LiveEvent) => boolean), refresh: () => unknown, delayMs = 150): void {
  const matches = typeof topics === 'function' ? topics : (e: LiveEvent) => topics.includes(e.topic);
  let timer: ReturnType<typeof setTimeout> | null = null;
  const schedule = () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      void refresh();
    }, delayMs);
  };
  const c = liveClient();
  const offEvent = c.onEvent((e) => { if (matches(e)) schedule(); });
  const offResync = c.onResync(() => schedule());
  onBeforeUnmount(() => {
    offEvent();
    offResync();
    if (timer) clearTimeout(timer);
  });
}
