import { NotFoundError } from '../../src/common/app-error';
import { QuotaDatabase } from '../../src/database/database';
import { dbErrorKind } from '../../src/database/sql-session';
import { IdempotencyService } from '../../src/quota/idempotency.service';
import { LedgerRepository } from '../../src/quota/ledger.repository';
import { LedgerService, MAX_BALANCE, type LedgerChange } from '../../src/quota/ledger.service';
import {
  BalanceOutOfRangeError,
  ConfigInactiveError,
  InsufficientQuotaError,
  MemberInactiveError,
  NegativeBalanceError,
} from '../../src/quota/quota.errors';
import { startTestApp, type TestApp } from '../support/test-app';
import { balanceOf, createConfig, createMember, historyOf, sql } from '../support/quota-factories';

/**
 * The ledger below HTTP, on the run's database (the embedded file, or MariaDB with
 * DB_CONNECTION=mysql): the repository's conditional update and history row, the service's
 * refusals, and changes racing on one member.
 */
describe('ledger repository and service', () => {
  let t: TestApp;
  let db: QuotaDatabase;
  let repository: LedgerRepository;
  let ledger: LedgerService;
  let changes: IdempotencyService;

  beforeAll(async () => {
    t = await startTestApp();
    db = t.app.get(QuotaDatabase);
    repository = t.app.get(LedgerRepository);
    ledger = t.app.get(LedgerService);
    changes = t.app.get(IdempotencyService);
  });

  afterAll(async () => {
    await t.close();
  });

  const consumption = (memberId: string, amount: number): LedgerChange => ({
    memberId,
    delta: -amount,
    reason: 'consumption',
    actor: 'user-1',
    requireActive: true,
  });

  it('applies a change and its history row in one transaction', async () => {
    const config = await createConfig(t, { maxQuota: 10 });
    const member = await createMember(t, { membershipType: config.membershipType });
    const entry = await db.transaction(async (s) => {
      const updated = await repository.applyDelta(s, consumption(member.id, 3));
      expect(updated).toEqual({ balance: 7, configId: config.id });
      const historyId = await repository.insertHistory(s, consumption(member.id, 3), updated!.balance);
      return { historyId, balance: updated!.balance };
    });
    expect(await balanceOf(t, member.id)).toBe(7);
    const history = await historyOf(t, member.id);
    expect(history.map((h) => [h.reason, h.delta, h.balance_after])).toEqual([
      ['initial_grant', 10, 10],
      ['consumption', -3, 7],
    ]);
    expect(history[1].id).toBe(entry.historyId);
  });

  it('leaves neither the balance nor a history row when the transaction rolls back', async () => {
    const member = await createMember(t, { maxQuota: 10 });
    await expect(
      db.transaction(async (s) => {
        const updated = await repository.applyDelta(s, consumption(member.id, 4));
        await repository.insertHistory(s, consumption(member.id, 4), updated!.balance);
        throw new Error('abandoned');
      }),
    ).rejects.toThrow('abandoned');
    expect(await balanceOf(t, member.id)).toBe(10);
    expect((await historyOf(t, member.id)).map((h) => h.reason)).toEqual(['initial_grant']);
  });

  it('matches no row for a change that would leave the balance below 0 or above 2^31-1', async () => {
    const member = await createMember(t, { maxQuota: 5 });
    await db.transaction(async (s) => {
      expect(await repository.applyDelta(s, consumption(member.id, 6))).toBeNull();
      expect(
        await repository.applyDelta(s, {
          memberId: member.id,
          delta: MAX_BALANCE,
          reason: 'manual_adjustment',
          actor: 'admin',
        }),
      ).toBeNull();
      expect(await repository.memberState(s, consumption(member.id, 6))).toEqual({
        balance: 5,
        membershipType: member.membershipType,
        failed: 'notBelowZero',
      });
    });
    expect(await balanceOf(t, member.id)).toBe(5);
    expect(await historyOf(t, member.id)).toHaveLength(1);
  });

  it('refuses with the reason the member state gives, and writes nothing', async () => {
    const config = await createConfig(t, { maxQuota: 5 });
    const member = await createMember(t, { membershipType: config.membershipType });
    const other = await createMember(t, { maxQuota: 5 });
    const apply = (change: LedgerChange) => db.transaction((s) => ledger.apply(s, change));

    await expect(apply(consumption(member.id, 6))).rejects.toBeInstanceOf(InsufficientQuotaError);
    await expect(
      apply({ memberId: member.id, delta: -6, reason: 'manual_adjustment', actor: 'admin' }),
    ).rejects.toBeInstanceOf(NegativeBalanceError);
    await expect(
      apply({ memberId: member.id, delta: MAX_BALANCE, reason: 'manual_adjustment', actor: 'admin' }),
    ).rejects.toBeInstanceOf(BalanceOutOfRangeError);
    await expect(apply(consumption('999999999', 1))).rejects.toBeInstanceOf(NotFoundError);

    await sql(t, 'UPDATE members SET is_active = 0 WHERE id = ?', [member.id]);
    await expect(apply(consumption(member.id, 1))).rejects.toBeInstanceOf(MemberInactiveError);
    // An admin change does not need an active member.
    const admin = await apply({ memberId: member.id, delta: -1, reason: 'manual_adjustment', actor: 'admin' });
    expect(admin.balanceAfter).toBe(4);

    await sql(t, 'UPDATE member_quota_config SET is_active = 0 WHERE membership_type = ?', [other.membershipType]);
    await expect(apply(consumption(other.id, 1))).rejects.toBeInstanceOf(ConfigInactiveError);

    expect(await balanceOf(t, member.id)).toBe(4);
    expect((await historyOf(t, member.id)).map((h) => h.delta)).toEqual([5, -1]);
    expect(await balanceOf(t, other.id)).toBe(5);
    expect(await historyOf(t, other.id)).toHaveLength(1);
  });

  it('refuses on the consume path (one round trip where the database takes batches) as in a transaction', async () => {
    const member = await createMember(t, { maxQuota: 2 });
    const first = await changes.runChange(null, consumption(member.id, 2));
    expect(first).toEqual({ entry: expect.objectContaining({ balanceAfter: 0, delta: -2 }), replayed: false });
    await expect(changes.runChange(null, consumption(member.id, 1))).rejects.toBeInstanceOf(InsufficientQuotaError);
    expect(await balanceOf(t, member.id)).toBe(0);
    expect((await historyOf(t, member.id)).map((h) => h.balance_after)).toEqual([2, 0]);
  });

  it('never lets concurrent consumes of one member take the balance below 0', async () => {
    const member = await createMember(t, { maxQuota: 10 });
    const results = await Promise.allSettled(
      Array.from({ length: 25 }, () => changes.runChange(null, consumption(member.id, 1))),
    );
    const applied = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r) => r.status === 'rejected');
    expect(applied).toHaveLength(10);
    expect(refused).toHaveLength(15);
    for (const r of refused) expect(r.reason).toBeInstanceOf(InsufficientQuotaError);
    expect(await balanceOf(t, member.id)).toBe(0);
    const history = await historyOf(t, member.id);
    expect(history).toHaveLength(11);
    // Each change saw the balance the one before it left.
    expect(history.slice(1).map((h) => h.balance_after)).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
  });

  it('keeps balance and history in step when consumes and admin changes race on one member', async () => {
    const member = await createMember(t, { maxQuota: 100 });
    const work: Promise<unknown>[] = [];
    for (let i = 0; i < 10; i++) {
      work.push(changes.runChange(null, consumption(member.id, 3)));
      work.push(
        db.transaction((s) =>
          ledger.apply(s, { memberId: member.id, delta: 2, reason: 'manual_adjustment', actor: 'admin' }),
        ),
      );
      work.push(
        db.transaction((s) =>
          ledger.setBalance(s, { memberId: member.id, newBalance: 50, reason: 'manual_adjustment', actor: 'admin' }),
        ),
      );
    }
    await Promise.all(work);
    const history = await historyOf(t, member.id);
    expect(history).toHaveLength(31);
    const balance = await balanceOf(t, member.id);
    expect(history.reduce((sum, h) => sum + h.delta, 0)).toBe(balance);
    expect(history[history.length - 1].balance_after).toBe(balance);
    for (let i = 1; i < history.length; i++) {
      expect(history[i].balance_after).toBe(history[i - 1].balance_after + history[i].delta);
    }
  });

  it('opens accounts set-based, refusing external ids that exist (a duplicate never half-applies)', async () => {
    const config = await createConfig(t, { maxQuota: 7 });
    const ids = await db.transaction((s) =>
      ledger.openAccounts(
        s,
        [
          { externalId: `open-a-${config.id}`, membershipType: config.membershipType },
          { externalId: `open-b-${config.id}`, membershipType: config.membershipType, initialQuota: 3 },
        ],
        'admin',
      ),
    );
    expect(await Promise.all(ids.map((id) => balanceOf(t, id)))).toEqual([7, 3]);
    const failure: unknown = await db
      .transaction((s) =>
        repository.insertMembers(s, [
          { externalId: `open-c-${config.id}`, membershipType: config.membershipType, balance: 1 },
          { externalId: `open-a-${config.id}`, membershipType: config.membershipType, balance: 1 },
        ]),
      )
      .then(
        () => null,
        (err: unknown) => err,
      );
    expect(dbErrorKind(failure)).toBe('duplicate');
    expect(await sql(t, 'SELECT id FROM members WHERE external_id = ?', [`open-c-${config.id}`])).toEqual([]);
  });
});
