// Which clients may connect: addresses and CIDR networks, as benno-smtp's
// allowed_clients and benno-milter's --allow name them.

import * as os from 'node:os';
import { BlockList, isIP, isIPv4 } from 'node:net';

export interface Subnet {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

export class SubnetError extends Error {}

/** "10.0.0.0/8, ::1/128 192.0.2.1" → subnets; a bare address is a /32 or /128. */
export function parseSubnets(v: string): Subnet[] {
  return v
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((item) => {
      const [address, prefixText] = item.split('/');
      const kind = isIP(address);
      if (kind === 0) throw new SubnetError(`"${item}" is not an IP address or CIDR network`);
      const max = kind === 4 ? 32 : 128;
      const prefix = prefixText === undefined ? max : Number(prefixText);
      if (!/^\d+$/.test(prefixText ?? String(max)) || prefix > max) throw new SubnetError(`"${item}": prefix must be 0-${max}`);
      return { address, prefix, family: kind === 4 ? 'ipv4' : 'ipv6' } as Subnet;
    });
}

/** "::ffff:192.0.2.1" (an IPv4 client on a dual-stack socket) is 192.0.2.1. */
export function plainAddress(address: string): { address: string; family: 'ipv4' | 'ipv6' } {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return { address: mapped[1], family: 'ipv4' };
  return { address, family: isIPv4(address) ? 'ipv4' : 'ipv6' };
}

/** Whether a host or network stays on this machine (127/8, ::1). */
export function isLoopback(host: string, prefix?: number): boolean {
  if (host === 'localhost') return true;
  if (/^127\./.test(host)) return prefix === undefined || prefix >= 8;
  return host === '::1' && (prefix === undefined || prefix === 128);
}

/** This host's interface addresses (lower case); loopback ones only with internal. */
export function hostAddresses(internal: boolean): string[] {
  return Object.values(os.networkInterfaces())
    .flat()
    .filter((i): i is os.NetworkInterfaceInfo => i !== undefined && (internal || (!i.internal && !/^fe80:/i.test(i.address))))
    .map((i) => i.address.toLowerCase());
}

/** This host's name and every address of its interfaces, as isThisHost compares them. */
export function thisHostNames(): string[] {
  return [os.hostname().toLowerCase(), ...hostAddresses(true)];
}

/** Whether host (a name, an address, an address in [brackets]) names this machine. */
export function isThisHost(host: string, names: readonly string[] = thisHostNames()): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return isLoopback(h) || names.includes(h);
}

export class AllowList {
  private readonly list = new BlockList();

  constructor(subnets: Subnet[]) {
    for (const s of subnets) this.list.addSubnet(s.address, s.prefix, s.family);
  }

  allows(address: string): boolean {
    const a = plainAddress(address);
    return this.list.check(a.address, a.family);
  }
}
