import fs from 'node:fs';
import os from 'node:os';
import type { AgentHostFacts } from '@certctl/kernel';

/** The agent's own version (its package.json), reported in heartbeats. */
export const AGENT_VERSION: string = (JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

// Go's names, which the seeds' agent metadata and agent-group matching use.
const ARCH: Record<string, string> = { x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

function distribution(): string {
  try {
    const text = fs.readFileSync('/etc/os-release', 'utf8');
    const m = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(text);
    if (m?.[1]) return m[1];
  } catch {
    // Not Linux, or a minimal image: fall back to the kernel's name.
  }
  return `${os.type()} ${os.release()}`;
}

/** The first external address (IPv4 preferred), or '' when the host has none. */
export function primaryAddress(ifaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = os.networkInterfaces()): string {
  const all = Object.values(ifaces).flatMap((list) => list ?? []).filter((i) => !i.internal);
  const v4 = all.find((i) => i.family === 'IPv4');
  const v6 = all.find((i) => i.family === 'IPv6' && !i.address.startsWith('fe80'));
  return (v4 ?? v6)?.address ?? '';
}

export function hostFacts(): Required<AgentHostFacts> {
  return {
    hostname: os.hostname().slice(0, 253),
    os: process.platform,
    platform: distribution().slice(0, 128),
    architecture: ARCH[process.arch] ?? process.arch,
    ip_address: primaryAddress(),
    version: AGENT_VERSION,
  };
}
