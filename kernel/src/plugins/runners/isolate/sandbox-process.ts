/**
 * Entry of the sandbox child process (forked from kernel/dist by the
 * IsolateRunner, with an empty environment and, where Node supports it, the
 * permission model: read access to its own code only, no writes, no child
 * processes, no workers). It hosts one plugin's isolate and relays the plugin's
 * host operations to the kernel over IPC; it holds no grants, secrets or
 * database handles, so even code that escaped the isolate would find little here.
 */
import { PluginIsolate } from './plugin-isolate.js';
import type { ChildMessage, ParentMessage } from './protocol.js';

if (typeof process.send !== 'function') {
  process.stderr.write('certctl sandbox: must be started by the kernel (child_process.fork)\n');
  process.exit(2);
}

const out = (msg: ChildMessage): void => {
  if (process.connected) process.send!(msg);
};

let host: PluginIsolate | null = null;

process.on('message', (msg: ParentMessage) => {
  switch (msg?.t) {
    case 'init': {
      if (host) return;
      host = new PluginIsolate(msg, out);
      host.prepare().then(
        () => out({ t: 'ready' }),
        (err: unknown) => out({ t: 'initFailed', message: err instanceof Error ? `${err.name}: ${err.message}` : String(err) }),
      );
      return;
    }
    case 'call':
      if (!host) return out({ t: 'done', id: msg.id, ok: false, code: 'unavailable', message: 'the sandbox has no plugin loaded' });
      void host.startCall(msg);
      return;
    case 'opResult':
      host?.deliverOp(msg);
      return;
    default:
  }
});

// The kernel went away (or closed the channel): nothing left to serve.
process.on('disconnect', () => process.exit(0));
