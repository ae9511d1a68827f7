import { keyHash, requestHash } from './idempotency.service';

describe('idempotency fingerprints', () => {
  it('scopes a key to its caller', () => {
    expect(keyHash('1', 'abc')).not.toBe(keyHash('2', 'abc'));
    expect(keyHash('1', 'abc')).toBe(keyHash('1', 'abc'));
    expect(keyHash('1', 'abc')).toMatch(/^[0-9a-f]{64}$/);
  });

  it('ignores field order and absent fields, but not values, members or operations', () => {
    const base = { operation: 'consume' as const, memberId: '7', body: { amount: 5, note: 'x' } };
    expect(requestHash(base)).toBe(requestHash({ ...base, body: { note: 'x', amount: 5 } }));
    expect(requestHash({ ...base, body: { amount: 5 } })).toBe(
      requestHash({ ...base, body: { amount: 5, note: undefined } }),
    );
    expect(requestHash(base)).not.toBe(requestHash({ ...base, body: { amount: 6, note: 'x' } }));
    expect(requestHash(base)).not.toBe(requestHash({ ...base, memberId: '8' }));
    expect(requestHash(base)).not.toBe(requestHash({ ...base, operation: 'refund' }));
  });
});
