import { DestinationPolicy, DestinationRefused, isPublicAddress } from './destination-policy';

const strict = new DestinationPolicy({ allowHttp: false, allowPrivateNetworks: false });
const relaxed = new DestinationPolicy({ allowHttp: true, allowPrivateNetworks: true });

async function refusal(policy: DestinationPolicy, url: string): Promise<string | undefined> {
  try {
    await policy.check(url);
    return undefined;
  } catch (err) {
    if (err instanceof DestinationRefused) return err.reason;
    throw err;
  }
}

describe('webhook destination policy', () => {
  it.each([
    ['127.0.0.1', false],
    ['10.1.2.3', false],
    ['172.16.0.9', false],
    ['192.168.1.1', false],
    ['169.254.169.254', false], // cloud metadata (link-local)
    ['100.100.100.200', false], // Alibaba metadata (carrier-grade NAT)
    ['0.0.0.0', false],
    ['224.0.0.1', false],
    ['::1', false],
    ['fe80::1', false],
    ['fd00:ec2::254', false], // AWS metadata over IPv6 (unique local)
    ['::ffff:127.0.0.1', false], // IPv4-mapped loopback
    ['::ffff:10.0.0.1', false],
    ['64:ff9b::a00:1', false], // NAT64 of 10.0.0.1
    ['2002:a00:1::1', false], // 6to4 of 10.0.0.1
    ['not-an-address', false],
    ['93.184.216.34', true],
    ['8.8.8.8', true],
    ['2001:4860:4860::8888', true],
    ['::ffff:8.8.8.8', true],
  ])('%s is public: %s', (address, expected) => {
    expect(isPublicAddress(address)).toBe(expected);
  });

  it('accepts https to a public address', async () => {
    expect(await refusal(strict, 'https://93.184.216.34/hooks')).toBeUndefined();
    expect(await refusal(strict, 'https://[2001:4860:4860::8888]:8443/hooks')).toBeUndefined();
  });

  it('refuses other schemes, credentials and garbage', async () => {
    expect(await refusal(strict, 'http://93.184.216.34/hooks')).toBe('only https URLs are accepted');
    expect(await refusal(strict, 'ftp://93.184.216.34/hooks')).toBe('only https URLs are accepted');
    expect(await refusal(relaxed, 'file:///etc/passwd')).toBe('only https URLs are accepted');
    expect(await refusal(strict, 'https://user:pw@93.184.216.34/')).toBe(
      'URLs with a user name or password are not accepted',
    );
    expect(await refusal(strict, 'not a url')).toBe('not a valid absolute URL');
  });

  it('refuses loopback, private, link-local and metadata destinations, by literal or by name', async () => {
    const privateAddress = 'the host resolves to a loopback, private, link-local or metadata address';
    for (const url of [
      'https://127.0.0.1/',
      'https://localhost:8443/',
      'https://10.0.0.5/',
      'https://169.254.169.254/latest/meta-data/',
      'https://[::1]/',
      'https://[::ffff:127.0.0.1]/',
      'https://[fd00:ec2::254]/',
      'https://0.0.0.0/',
      'https://2130706433/', // 127.0.0.1 as one number: the URL parser normalises it
    ]) {
      expect([url, await refusal(strict, url)]).toEqual([url, privateAddress]);
    }
  });

  it('accepts them all with both switches on', async () => {
    expect(await refusal(relaxed, 'http://127.0.0.1:9999/hook')).toBeUndefined();
    expect(await refusal(relaxed, 'http://localhost/hook')).toBeUndefined();
  });

  it('checks the address again inside the socket lookup', async () => {
    const lookup = strict.lookupFor();
    const result = await new Promise<{ err: NodeJS.ErrnoException | null; address: unknown }>((resolve) =>
      lookup('localhost', { all: false }, (err, address) => resolve({ err, address })),
    );
    expect(result.err).toBeInstanceOf(DestinationRefused);
    const ok = await new Promise<{ err: NodeJS.ErrnoException | null; address: unknown }>((resolve) =>
      relaxed.lookupFor()('localhost', { all: false }, (err, address) => resolve({ err, address })),
    );
    expect(ok.err).toBeNull();
    expect(['127.0.0.1', '::1']).toContain(ok.address);
  });
});
