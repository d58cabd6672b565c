import type { PluginCapabilities, PluginCapability } from '@certctl/sdk';
import { execCapabilityOf, manifestExecGrants, type ExecArgRule, type ExecGrant } from '@certctl/sdk/policy';

/**
 * Capability sets as flat items, so grants can be compared and narrowed exactly:
 * `http:api.example.com`, `kv`, `kv:max-keys=N` (a larger kv quota), `events`, `fs:/etc/ssl`, and for
 * exec either `exec:/usr/sbin/nginx` (any arguments: the manifest lists none for it) or, when the
 * manifest lists argument lists for the command (capabilities.exec.args), `exec:/usr/sbin/nginx listed`
 * (the command, run only with listed arguments, also when a config field names it) plus one item per list,
 * `exec:/usr/sbin/nginx ["-s","reload"]`, so the operator grants, and an upgrade asks again for,
 * exactly the argument lists the plugin will run. Command names hold no spaces (manifest schema), so
 * the first space ends the command. A grant is always a subset of what the manifest asked for, item by item.
 */
export function capabilityItems(c: PluginCapabilities | null | undefined): string[] {
  if (!c) return [];
  const items: string[] = [];
  for (const host of c.http?.hosts ?? []) items.push(`http:${host}`);
  if (c.kv) items.push('kv');
  // A larger key quota is its own item, so the operator grants it explicitly.
  if (typeof c.kv === 'object' && c.kv) items.push(`kv:max-keys=${c.kv.maxKeys}`);
  if (c.events === true) items.push('events');
  if (c.issuance === true) items.push('issuance');
  for (const p of c.fs?.paths ?? []) items.push(`fs:${p}`);
  for (const g of manifestExecGrants(c.exec)) {
    if (g.args === null) {
      items.push(`exec:${g.command}`);
      continue;
    }
    items.push(`exec:${g.command} ${LISTED}`);
    for (const rule of g.args) items.push(`exec:${g.command} ${JSON.stringify(rule)}`);
  }
  return [...new Set(items)].sort();
}

const LISTED = 'listed';

/** The capability set made of these items (the inverse of capabilityItems). */
export function fromItems(items: Iterable<string>): PluginCapabilities {
  const out: PluginCapabilities = {};
  const exec: ExecGrant[] = [];
  for (const item of [...new Set(items)].sort()) {
    if (item === 'kv') out.kv ??= true;
    else if (item.startsWith('kv:max-keys=')) out.kv = { maxKeys: Number(item.slice('kv:max-keys='.length)) };
    else if (item === 'events') out.events = true;
    else if (item === 'issuance') out.issuance = true;
    else {
      const at = item.indexOf(':');
      const name = item.slice(0, at);
      const value = item.slice(at + 1);
      if (name === 'http') (out.http ??= { hosts: [] }).hosts.push(value);
      else if (name === 'fs') (out.fs ??= { paths: [] }).paths.push(value);
      else if (name === 'exec') {
        // `cmd`: any arguments; `cmd listed`: only listed ones; `cmd [...]`: one list.
        const space = value.indexOf(' ');
        const rest = space < 0 ? null : value.slice(space + 1);
        exec.push({ command: space < 0 ? value : value.slice(0, space), args: rest === null ? null : rest === LISTED ? [] : [JSON.parse(rest) as ExecArgRule] });
      }
    }
  }
  if (exec.length) {
    // A command granted with any arguments keeps any arguments (execCapabilityOf).
    const { commands, args } = execCapabilityOf(exec);
    out.exec = Object.keys(args).length ? { commands, args } : { commands };
  }
  return out;
}

/** The same set in canonical form (sorted, no duplicates, no empty or false members). */
export const normalizeCapabilities = (c: PluginCapabilities | null | undefined): PluginCapabilities => fromItems(capabilityItems(c));

/** Items in `granted` that `requested` does not contain (a grant may not exceed the request). */
export function notRequested(requested: PluginCapabilities, granted: PluginCapabilities): string[] {
  const asked = new Set(capabilityItems(requested));
  return capabilityItems(granted).filter((i) => !asked.has(i));
}

/** `granted` limited to what `requested` still asks for (after an upgrade drops a request). */
export function narrowGrant(granted: PluginCapabilities, requested: PluginCapabilities): PluginCapabilities {
  const asked = new Set(capabilityItems(requested));
  return fromItems(capabilityItems(granted).filter((i) => asked.has(i)));
}

/** What a new version asks for that the operator has not been asked about before. */
export function newRequests(previouslyRequested: PluginCapabilities, requested: PluginCapabilities): string[] {
  const before = new Set(capabilityItems(previouslyRequested));
  return capabilityItems(requested).filter((i) => !before.has(i));
}

const NAMES: readonly PluginCapability[] = ['http', 'kv', 'events', 'issuance', 'fs', 'exec'];

/**
 * The requested capabilities named in `names` (as `--grant http,kv` says), each in
 * full. A name the plugin did not ask for is an error, not silently ignored.
 */
export function selectCapabilities(requested: PluginCapabilities, names: string[]): PluginCapabilities {
  const wanted = new Set(names.map((n) => n.trim()).filter(Boolean));
  for (const n of wanted) {
    if (!(NAMES as readonly string[]).includes(n)) throw new Error(`unknown capability "${n}" (known: ${NAMES.join(', ')})`);
    if (!capabilityItems(requested).some((i) => i === n || i.startsWith(`${n}:`))) throw new Error(`the plugin does not ask for "${n}"`);
  }
  return fromItems(capabilityItems(requested).filter((i) => wanted.has(i.split(':')[0])));
}
