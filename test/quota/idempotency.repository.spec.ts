import { QuotaDatabase } from '../../src/database/database';
import { dbErrorKind } from '../../src/database/sql-session';
import { IdempotencyRepository, IDEMPOTENCY_TTL_MS } from '../../src/quota/idempotency.repository';
import { IdempotencyService, keyHash, requestHash, type IdempotentRequest } from '../../src/quota/idempotency.service';
import type { LedgerChange } from '../../src/quota/ledger.service';
import { IdempotencyKeyMismatchError, InsufficientQuotaError } from '../../src/quota/quota.errors';
import { startTestApp, type TestApp } from '../support/test-app';
import { balanceOf, createMember, historyOf, sql } from '../support/quota-factories';

/**
 * Idempotency keys below HTTP, on the run's database: the claim, a replay, a mismatch, the exact
 * comparison of keys, and expiry. runChange() takes the consume path (one round trip where the
 * database takes batches, a transaction on the embedded database).
 */
describe('idempotency repository and service', () => {
  let t: TestApp;
  let db: QuotaDatabase;
  let keys: IdempotencyRepository;
  let service: IdempotencyService;

  beforeAll(async () => {
    t = await startTestApp();
    db = t.app.get(QuotaDatabase);
    keys = t.app.get(IdempotencyRepository);
    service = t.app.get(IdempotencyService);
  });

  afterAll(async () => {
    await t.close();
  });

  const consume = (memberId: string, amount: number, key: string, scope = 'user-1') => {
    const request: IdempotentRequest = { scope, key, operation: 'consume', memberId, body: { amount } };
    const change: LedgerChange = {
      memberId,
      delta: -amount,
      reason: 'consumption',
      actor: scope,
      idempotencyKey: key,
      requireActive: true,
    };
    return service.runChange(request, change);
  };

  it('claims a key once: a second claim of the same hash fails as a duplicate', async () => {
    const member = await createMember(t);
    const claim = { keyHash: keyHash('user-1', 'claim-1'), scope: 'user-1', requestHash: 'r1', memberId: member.id };
    const now = new Date();
    await db.transaction((s) => keys.insertClaim(s, claim, now));
    const failure: unknown = await db
      .transaction((s) => keys.insertClaim(s, { ...claim, requestHash: 'r2' }, now), { retries: 0 })
      .then(
        () => null,
        (err: unknown) => err,
      );
    expect(dbErrorKind(failure)).toBe('duplicate');
    const stored = await db.read((s) => keys.findKey(s, claim.keyHash));
    expect(stored).toEqual({ requestHash: 'r1', memberId: member.id, expiresAt: expect.any(Date) });
    expect(Math.abs(stored!.expiresAt.getTime() - now.getTime() - IDEMPOTENCY_TTL_MS)).toBeLessThan(1000);
  });

  it('applies a change once and replays its first answer', async () => {
    const member = await createMember(t, { maxQuota: 10 });
    const first = await consume(member.id, 4, 'replay-1');
    expect(first.replayed).toBe(false);
    expect(first.entry).toEqual(expect.objectContaining({ memberId: member.id, delta: -4, balanceAfter: 6 }));
    const again = await consume(member.id, 4, 'replay-1');
    expect(again).toEqual({ entry: first.entry, replayed: true });
    expect(await balanceOf(t, member.id)).toBe(6);
    expect((await historyOf(t, member.id)).map((h) => [h.delta, h.idempotency_key])).toEqual([
      [10, null],
      [-4, 'replay-1'],
    ]);
    const stored = await db.read((s) => keys.findKey(s, keyHash('user-1', 'replay-1')));
    expect(stored?.requestHash).toBe(requestHash({ operation: 'consume', memberId: member.id, body: { amount: 4 } }));
  });

  it('refuses the same key with another request (mismatch) and changes nothing', async () => {
    const member = await createMember(t, { maxQuota: 10 });
    await consume(member.id, 2, 'mismatch-1');
    await expect(consume(member.id, 3, 'mismatch-1')).rejects.toBeInstanceOf(IdempotencyKeyMismatchError);
    expect(await balanceOf(t, member.id)).toBe(8);
    expect(await historyOf(t, member.id)).toHaveLength(2);
  });

  it('compares keys exactly: keys differing only in case are two keys', async () => {
    const member = await createMember(t, { maxQuota: 10 });
    const upper = await consume(member.id, 1, 'Key-A');
    const lower = await consume(member.id, 2, 'key-a');
    expect(lower.replayed).toBe(false);
    expect(lower.entry.historyId).not.toBe(upper.entry.historyId);
    expect(await balanceOf(t, member.id)).toBe(7);
    // Each replays its own first answer, though MySQL's collation matches both history rows.
    expect(await consume(member.id, 1, 'Key-A')).toEqual({ entry: upper.entry, replayed: true });
    expect(await consume(member.id, 2, 'key-a')).toEqual({ entry: lower.entry, replayed: true });
    const rows = await db.read((s) => keys.historyRowsUnderKey(s, member.id, 'key-a', 'user-1'));
    expect(rows.filter((r) => r.idempotencyKey === 'key-a').map((r) => r.entry)).toEqual([lower.entry]);
    expect(await balanceOf(t, member.id)).toBe(7);
  });

  it('leaves no key behind when the change is refused', async () => {
    const member = await createMember(t, { maxQuota: 1 });
    await expect(consume(member.id, 2, 'refused-1')).rejects.toBeInstanceOf(InsufficientQuotaError);
    expect(await db.read((s) => keys.findKey(s, keyHash('user-1', 'refused-1')))).toBeNull();
    const ok = await consume(member.id, 1, 'refused-1');
    expect(ok.replayed).toBe(false);
    expect(await balanceOf(t, member.id)).toBe(0);
  });

  it('scopes keys per caller', async () => {
    const member = await createMember(t, { maxQuota: 10 });
    await consume(member.id, 1, 'scoped-1', 'user-1');
    const theirs = await consume(member.id, 1, 'scoped-1', 'user-2');
    expect(theirs.replayed).toBe(false);
    expect(await balanceOf(t, member.id)).toBe(8);
  });

  it('purges expired keys; an expired key no longer replays', async () => {
    const member = await createMember(t, { maxQuota: 10 });
    await consume(member.id, 1, 'expiring-1');
    const hash = keyHash('user-1', 'expiring-1');
    await sql(t, 'UPDATE idempotency_keys SET expires_at = ? WHERE key_hash = ?', ['2000-01-01 00:00:00.000', hash]);
    expect(await db.read((s) => keys.expiredKeyHashes(s, new Date(), 1000))).toContain(hash);
    expect(await service.purgeExpired()).toBeGreaterThanOrEqual(1);
    expect(await db.read((s) => keys.findKey(s, hash))).toBeNull();
    const again = await consume(member.id, 1, 'expiring-1');
    expect(again.replayed).toBe(false);
    expect(await balanceOf(t, member.id)).toBe(8);
  });
});
