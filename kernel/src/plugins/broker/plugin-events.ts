import { EventEmitter } from 'node:events';
import type { Json } from '@certctl/sdk';
import type { AuditLog } from '../../audit/audit-log.js';

/** One event a plugin emitted (capability `events`). */
export interface PluginEvent {
  pluginId: string;
  instanceId: string | null;
  type: string;
  data: Record<string, Json>;
  /** Epoch ms at the kernel. */
  at: number;
}

/** Why an event cannot be accepted, or null: @certctl/sdk/policy's rule, which the SDK's test host applies too. */
export { eventProblem, MAX_EVENT_BYTES } from '@certctl/sdk/policy';

/**
 * The kernel's in-process stream of plugin events: kernel code (or a later live
 * view) subscribes with `on('event', fn)`. Listeners run synchronously after the
 * audit row is written; one that throws is logged by the emitter's caller, not
 * the plugin's problem.
 */
export class PluginEventBus extends EventEmitter<{ event: [PluginEvent] }> {}

/**
 * Records an event in the audit trail (category system, action plugin_event,
 * actor `plugin:<id>`) and then publishes it on the bus. The audit row is the
 * durable record; the bus is for whoever listens in this process.
 */
export async function emitPluginEvent(audit: AuditLog, bus: PluginEventBus, event: PluginEvent): Promise<void> {
  await audit.append({
    category: 'system',
    actor: `plugin:${event.pluginId}`,
    actor_type: 'plugin',
    action: 'plugin_event',
    resource_type: 'plugin',
    resource_id: event.pluginId,
    details: { type: event.type, instance_id: event.instanceId, data: event.data },
  });
  bus.emit('event', event);
}
