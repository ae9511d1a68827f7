import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';

/** Why a webhook destination is refused; the words an API error or a delivery log shows. */
export type DestinationRefusal =
  | 'not a valid absolute URL'
  | 'only https URLs are accepted'
  | 'URLs with a user name or password are not accepted'
  | 'the host name does not resolve'
  | 'the host resolves to a loopback, private, link-local or metadata address';

export class DestinationRefused extends Error {
  readonly code = 'EWEBHOOKDESTINATION';

  constructor(readonly reason: DestinationRefusal) {
    super(reason);
  }
}

export interface DestinationRules {
  readonly allowHttp: boolean;
  readonly allowPrivateNetworks: boolean;
}

/**
 * Whether an address is on the public internet. Only ipaddr.js's `unicast` range is: loopback,
 * private (RFC 1918, unique local), link-local (where cloud metadata services answer, e.g.
 * 169.254.169.254), carrier-grade NAT (Alibaba's metadata at 100.100.100.200), unspecified,
 * multicast, reserved and the IPv6 forms that embed an IPv4 address (NAT64, 6to4, Teredo) are not.
 * IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
 */
export function isPublicAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  let parsed = ipaddr.parse(address);
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) {
    parsed = (parsed as ipaddr.IPv6).toIPv4Address();
  }
  return parsed.range() === 'unicast';
}

/**
 * Where webhooks may be sent (contract §12): `https` only unless WEBHOOK_ALLOW_HTTP, and never to
 * an address that is not public unless WEBHOOK_ALLOW_PRIVATE_NETWORKS. The URL is checked when a
 * subscription is saved; the resolved address is checked again at every send, inside the socket's
 * own DNS lookup (lookupFor), so a name that changes its answer between check and connect (DNS
 * rebinding) is caught where the connection is made.
 */
export class DestinationPolicy {
  constructor(private readonly rules: DestinationRules) {}

  /** The URL's own checks (scheme, credentials), without DNS. */
  parse(url: string): URL {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new DestinationRefused('not a valid absolute URL');
    }
    const schemes = this.rules.allowHttp ? ['https:', 'http:'] : ['https:'];
    if (!schemes.includes(parsed.protocol)) throw new DestinationRefused('only https URLs are accepted');
    if (parsed.hostname === '') throw new DestinationRefused('not a valid absolute URL');
    if (parsed.username !== '' || parsed.password !== '') {
      throw new DestinationRefused('URLs with a user name or password are not accepted');
    }
    return parsed;
  }

  /** The URL's checks and every address its host resolves to; throws DestinationRefused. */
  async check(url: string): Promise<URL> {
    const parsed = this.parse(url);
    await this.resolve(hostOf(parsed));
    return parsed;
  }

  /** Every address of `host`, refused when any one is not public (a name must not mix the two). */
  async resolve(host: string): Promise<LookupAddress[]> {
    const addresses = await new Promise<LookupAddress[]>((resolve, reject) =>
      dnsLookup(host, { all: true, verbatim: true }, (err, found) =>
        err ? reject(new DestinationRefused('the host name does not resolve')) : resolve(found),
      ),
    );
    if (addresses.length === 0) throw new DestinationRefused('the host name does not resolve');
    if (!this.rules.allowPrivateNetworks && addresses.some((a) => !isPublicAddress(a.address))) {
      throw new DestinationRefused('the host resolves to a loopback, private, link-local or metadata address');
    }
    return addresses;
  }

  /**
   * A `lookup` for http(s).request: resolves through resolve(), so the address the socket connects
   * to is the one that was checked.
   */
  lookupFor(): LookupFunction {
    return (hostname, options, callback) => {
      this.resolve(hostname).then(
        (addresses) => {
          if (options.all) callback(null, addresses);
          else callback(null, addresses[0].address, addresses[0].family);
        },
        (err: NodeJS.ErrnoException) => callback(err, '', 0),
      );
    };
  }
}

/** The host of a URL as DNS wants it (IPv6 literals without their brackets). */
export function hostOf(url: URL): string {
  return url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
}
