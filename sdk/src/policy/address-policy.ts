import net from 'node:net';

/**
 * Classes of IP address a plugin's http.fetch may end up at. `public` and
 * `private` are ordinary destinations (internal CAs live on private networks);
 * the others are refused unless the operator declared that exact host or address.
 */
export type AddressClass = 'public' | 'private' | 'loopback' | 'link-local' | 'metadata' | 'unspecified' | 'multicast' | 'broadcast' | 'reserved';

/** Cloud instance-metadata and platform endpoints: credentials live behind these. */
const metadata = new net.BlockList();
for (const a of ['169.254.169.254', '169.254.170.2', '100.100.100.200', '168.63.129.16']) metadata.addAddress(a, 'ipv4');
metadata.addAddress('fd00:ec2::254', 'ipv6');

const ranges: [AddressClass, string, number, 'ipv4' | 'ipv6'][] = [
  ['unspecified', '0.0.0.0', 8, 'ipv4'],
  ['loopback', '127.0.0.0', 8, 'ipv4'],
  ['link-local', '169.254.0.0', 16, 'ipv4'],
  ['multicast', '224.0.0.0', 4, 'ipv4'],
  ['reserved', '240.0.0.0', 4, 'ipv4'],
  ['private', '10.0.0.0', 8, 'ipv4'],
  ['private', '172.16.0.0', 12, 'ipv4'],
  ['private', '192.168.0.0', 16, 'ipv4'],
  ['private', '100.64.0.0', 10, 'ipv4'],
  ['unspecified', '::', 128, 'ipv6'],
  ['loopback', '::1', 128, 'ipv6'],
  ['link-local', 'fe80::', 10, 'ipv6'],
  ['multicast', 'ff00::', 8, 'ipv6'],
  // Addresses that embed an IPv4 address (NAT64, IPv4-compatible) could smuggle a refused one.
  ['reserved', '64:ff9b::', 96, 'ipv6'],
  ['reserved', '64:ff9b:1::', 48, 'ipv6'],
  ['reserved', '::', 96, 'ipv6'],
  ['private', 'fc00::', 7, 'ipv6'],
];

const lists = new Map<AddressClass, net.BlockList>();
for (const [cls, addr, prefix, family] of ranges) {
  let list = lists.get(cls);
  if (!list) lists.set(cls, (list = new net.BlockList()));
  list.addSubnet(addr, prefix, family);
}

/** `::ffff:127.0.0.1` is 127.0.0.1 on the wire; classify what it really reaches. */
export function normalizeAddress(address: string): string {
  const a = address.toLowerCase().replace(/^\[|\]$/g, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped) return mapped[1];
  const hexMapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(a);
  if (hexMapped) {
    const hi = parseInt(hexMapped[1], 16);
    const lo = parseInt(hexMapped[2], 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return a;
}

export function classifyAddress(address: string): AddressClass {
  const a = normalizeAddress(address);
  const family = net.isIP(a);
  if (!family) throw new Error(`not an IP address: ${address}`);
  const type = family === 4 ? 'ipv4' : 'ipv6';
  if (metadata.check(a, type)) return 'metadata';
  if (a === '255.255.255.255') return 'broadcast';
  for (const cls of ['unspecified', 'loopback', 'link-local', 'multicast', 'reserved', 'private'] as const) {
    if (lists.get(cls)?.check(a, type)) return cls;
  }
  return 'public';
}

/** Classes a plugin reaches without an exact declaration. */
export const ORDINARY_CLASSES: ReadonlySet<AddressClass> = new Set(['public', 'private']);
/** Classes reachable only when the exact IP literal is declared (a hostname is not enough). */
export const IP_LITERAL_ONLY_CLASSES: ReadonlySet<AddressClass> = new Set(['metadata', 'unspecified']);

/**
 * The key a client address is counted under by per-address limits: an IPv4
 * address (also when IPv4-mapped) as is, an IPv6 address by its /64, since one
 * host usually holds a whole /64 and could otherwise rotate through it.
 */
export function clientAddressKey(address: string): string {
  // IPv4-mapped forms (dotted or hex) become the IPv4 address they carry, as everywhere else here.
  const a = normalizeAddress(address).replace(/%.*$/, '');
  if (!a.includes(':')) return a;
  const [head, tail = ''] = a.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = a.includes('::') ? [...h, ...Array(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t] : h;
  return `${groups.slice(0, 4).map((g) => g.toLowerCase().replace(/^0+(?=.)/, '')).join(':')}::/64`;
}
