import { JobsClock } from '../../src/jobs/clock';
import { ResetScheduler } from '../../src/jobs/reset-scheduler.service';
import { loginAs } from '../support/auth';
import { createConfig, ledgerReport, sql } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';
import { balances, seedMembers, waitForOperation } from './helpers';

type Period = 'daily' | 'weekly' | 'monthly';

/** Boundaries per zone: [period, just before, the boundary (local midnight), the period the boundary starts]. */
const SCENARIOS: Record<string, [Period, string, string][]> = {
  UTC: [
    ['daily', '2026-03-10T23:59:59.000Z', '2026-03-11T00:00:00.000Z'],
    ['weekly', '2026-03-15T23:59:59.000Z', '2026-03-16T00:00:00.000Z'],
    ['monthly', '2026-01-31T23:59:59.000Z', '2026-02-01T00:00:00.000Z'],
  ],
  // Clocks go forward on 29 March: the day boundary moves from 23:00Z to 22:00Z.
  'Europe/Berlin': [
    ['daily', '2026-03-29T21:59:59.000Z', '2026-03-29T22:00:00.000Z'],
    ['weekly', '2026-03-29T21:59:59.000Z', '2026-03-29T22:00:00.000Z'],
    ['monthly', '2026-03-31T21:59:59.000Z', '2026-03-31T22:00:00.000Z'],
  ],
};

describe.each(Object.keys(SCENARIOS))('periodic resets in %s', (zone) => {
  let t: TestApp;
  let admin: string;
  let now: Date;

  beforeAll(async () => {
    // The timer tick is pushed out of the way: the test drives tick() with its own clock.
    t = await startTestApp({ env: { QUOTA_TIMEZONE: zone, JOBS_RESET_TICK_MS: '3600000', JOBS_CHUNK_SIZE: '4' } });
    admin = (await loginAs(t, 'admin')).token;
    jest.spyOn(t.app.get(JobsClock), 'now').mockImplementation(() => now);
  });

  afterAll(async () => {
    await t?.close();
  });

  /** Ticks; returns the resets created for this config (other tests' configs get theirs too). */
  async function tickAndWait(configId: string, ticks = 1): Promise<string[]> {
    const created = (await Promise.all(Array.from({ length: ticks }, () => t.app.get(ResetScheduler).tick()))).flat();
    for (const id of created) expect(await waitForOperation(t, admin, id)).toMatchObject({ status: 'completed' });
    if (created.length === 0) return [];
    const mine = await sql<{ id: unknown }>(
      t,
      `SELECT id FROM quota_operations WHERE config_id = ? AND id IN (${created.map(() => '?').join(', ')}) ORDER BY id`,
      [configId, ...created],
    );
    return mine.map((r) => String(r.id));
  }

  async function resetsOf(configId: string): Promise<{ period_key: string; total: number }[]> {
    const rows = await sql<{ period_key: string; total: unknown }>(
      t,
      "SELECT period_key, total FROM quota_operations WHERE kind = 'periodic_reset' AND config_id = ? ORDER BY id",
      [configId],
    );
    return rows.map((r) => ({ period_key: r.period_key, total: Number(r.total) }));
  }

  async function consumeAll(ids: string[], amount: number): Promise<void> {
    for (const id of ids) {
      await sql(t, 'UPDATE members SET quota_balance = quota_balance - ? WHERE id = ?', [amount, id]);
      await sql(
        t,
        "INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor) SELECT id, ?, quota_balance, 'consumption', 'system' FROM members WHERE id = ?",
        [-amount, id],
      );
    }
  }

  it.each(SCENARIOS[zone])(
    '%s: resets once per period at the boundary, with period_started_at and one periodic_reset row per member',
    async (period, before, boundary) => {
      const config = await createConfig(t, { maxQuota: 30, resetPeriod: period });
      // The config existed long before the scenario.
      await sql(t, "UPDATE member_quota_config SET created_at = '2025-06-01 00:00:00.000' WHERE id = ?", [config.id]);
      const { ids } = await seedMembers(t, 10, { membershipType: config.membershipType, balance: 30 });

      // First tick: the current period was never reset (the service was not running at its start): caught up once.
      now = new Date(before);
      await consumeAll(ids, 5);
      expect(await tickAndWait(config.id)).toHaveLength(1);
      expect(await balances(t, ids)).toEqual(ids.map(() => 30));
      expect(await tickAndWait(config.id)).toEqual([]);

      // Consumption, then the boundary: one reset for the new period.
      await consumeAll(ids, 12);
      now = new Date(new Date(before).getTime() + 500);
      expect(await tickAndWait(config.id)).toEqual([]);
      expect(await balances(t, ids)).toEqual(ids.map(() => 18));
      now = new Date(boundary);
      const [resetId] = await tickAndWait(config.id);
      expect(resetId).toBeDefined();
      expect(await tickAndWait(config.id)).toEqual([]);
      expect(await balances(t, ids)).toEqual(ids.map(() => 30));

      const resets = await resetsOf(config.id);
      expect(resets).toHaveLength(2);
      expect(resets[1]).toEqual({ period_key: `${period}:${boundary}`, total: 10 });
      const started = await sql<{ period_started_at: unknown }>(
        t,
        'SELECT period_started_at FROM members WHERE id = ?',
        [ids[0]],
      );
      const startedAt = started[0].period_started_at;
      expect(
        (startedAt instanceof Date ? startedAt : new Date(`${String(startedAt).replace(' ', 'T')}Z`)).toISOString(),
      ).toBe(boundary);
      const rows = await sql<{ member_id: unknown; n: unknown }>(
        t,
        'SELECT member_id, COUNT(*) AS n FROM member_quota_history WHERE operation_id = ? GROUP BY member_id',
        [resetId],
      );
      expect(rows).toHaveLength(10);
      expect(rows.every((r) => Number(r.n) === 1)).toBe(true);
      const reasons = await sql<{ reason: string }>(
        t,
        'SELECT DISTINCT reason FROM member_quota_history WHERE operation_id = ?',
        [resetId],
      );
      expect(reasons).toEqual([{ reason: 'periodic_reset' }]);
      expect((await ledgerReport(t)).mismatches).toEqual([]);
    },
  );

  it('catches up a missed period once after downtime, however many boundaries were missed', async () => {
    const config = await createConfig(t, { maxQuota: 20, resetPeriod: 'daily' });
    await sql(t, "UPDATE member_quota_config SET created_at = '2025-06-01 00:00:00.000' WHERE id = ?", [config.id]);
    const { ids } = await seedMembers(t, 3, { membershipType: config.membershipType, balance: 20 });
    now = new Date('2026-05-04T12:00:00.000Z');
    await tickAndWait(config.id);
    await consumeAll(ids, 15);
    // Down for five days: the next tick sees only the current period.
    now = new Date('2026-05-09T12:00:00.000Z');
    // Two ticks at once (as two instances would): one reset.
    expect(await tickAndWait(config.id, 2)).toHaveLength(1);
    expect(await tickAndWait(config.id)).toEqual([]);
    expect(await balances(t, ids)).toEqual([20, 20, 20]);
    const resets = await resetsOf(config.id);
    expect(resets.map((r) => r.period_key)).toHaveLength(2);
    expect(resets[1].period_key.startsWith('daily:2026-05-0')).toBe(true);
    expect((await ledgerReport(t)).mismatches).toEqual([]);
  });

  it('does not reset a period that began before the config existed, nor configs without a period or inactive ones', async () => {
    const fresh = await createConfig(t, { maxQuota: 9, resetPeriod: 'daily' });
    const none = await createConfig(t, { maxQuota: 9, resetPeriod: 'none' });
    const inactive = await createConfig(t, { maxQuota: 9, resetPeriod: 'daily', isActive: false });
    for (const c of [none, inactive]) {
      await sql(t, "UPDATE member_quota_config SET created_at = '2025-06-01 00:00:00.000' WHERE id = ?", [c.id]);
    }
    now = new Date();
    await tickAndWait(fresh.id);
    expect(await resetsOf(fresh.id)).toEqual([]);
    expect(await resetsOf(none.id)).toEqual([]);
    expect(await resetsOf(inactive.id)).toEqual([]);
  });
});
