import request from 'supertest';
import { JobsClock } from '../../src/jobs/clock';
import { ResetScheduler } from '../../src/jobs/reset-scheduler.service';
import { LedgerBulkService } from '../../src/quota/ledger-bulk.service';
import { bearer, loginAs } from '../support/auth';
import { createConfig, createMember, ledgerReport, sql } from '../support/quota-factories';
import { waitFor } from '../support/service-process';
import { startTestApp, type TestApp } from '../support/test-app';
import { BULK, balances, getOperation, rowsPerMember, seedMembers, waitForOperation } from '../jobs/helpers';
import { setReadOnly } from './helpers';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Background work during a write freeze: operations pause between chunks and resume after it,
 * resets due meanwhile run once afterwards, expired holds wait for the end of the freeze.
 */
describe('background work during a write freeze', () => {
  let t: TestApp;
  let admin: string;
  let now: Date | undefined;

  beforeAll(async () => {
    // The reset tick timer is pushed out of the way: the test drives the clock and the ticks.
    t = await startTestApp({
      env: { JOBS_CHUNK_SIZE: '5', JOBS_RESET_TICK_MS: '3600000', THROTTLE_LIMIT: '0' },
    });
    admin = (await loginAs(t, 'admin')).token;
    const clock = t.app.get(JobsClock);
    const real = clock.now.bind(clock);
    jest.spyOn(clock, 'now').mockImplementation(() => now ?? real());
  });

  afterAll(async () => {
    await t?.close();
  });

  afterEach(async () => {
    // A failed test must not leave the next one frozen.
    await setReadOnly(t, admin, false);
    now = undefined;
  });

  it('a bulk operation stops after the chunk in hand, stays running, and completes once after the freeze', async () => {
    const { membershipType, ids } = await seedMembers(t, 60, { balance: 50 });
    // Slow chunks, so that the freeze lands in the middle of the operation.
    const bulk = t.app.get(LedgerBulkService);
    const applyChunk = bulk.applyChunk.bind(bulk);
    const spy = jest.spyOn(bulk, 'applyChunk').mockImplementation(async (...args) => {
      await sleep(60);
      return applyChunk(...args);
    });
    try {
      const res = await request(t.server)
        .post(BULK)
        .set(bearer(admin))
        .send({ membership_type: membershipType, delta: -1 });
      expect(res.status).toBe(202);
      const id = res.body.data.operation_id as string;
      await waitFor(async () => (await getOperation(t, admin, id)).processed >= 5, 10_000, 10);
      await setReadOnly(t, admin, true, 'pausing the bulk operation');

      // The chunk in hand finishes; then nothing moves.
      await sleep(500);
      const paused = await getOperation(t, admin, id);
      await sleep(1500);
      const still = await getOperation(t, admin, id);
      expect(still).toMatchObject({ status: paused.status, processed: paused.processed, changed: paused.changed });
      expect(['queued', 'running']).toContain(still.status);
      expect(still.processed).toBeLessThan(60);
      expect(still.processed % 5).toBe(0);
      const historyWhileFrozen = await rowsPerMember(t, id);
      expect(historyWhileFrozen.size).toBe(still.processed);

      await setReadOnly(t, admin, false);
      const done = await waitForOperation(t, admin, id);
      expect(done).toMatchObject({ status: 'completed', total: 60, processed: 60, changed: 60, failed: 0 });
      const rows = await rowsPerMember(t, id);
      expect(rows.size).toBe(60);
      expect([...rows.values()].every((n) => n === 1)).toBe(true);
      expect(await balances(t, ids)).toEqual(ids.map(() => 49));
      expect((await ledgerReport(t)).mismatches).toEqual([]);
    } finally {
      spy.mockRestore();
    }
  });

  it('a periodic reset due during the freeze is not run while frozen, and runs exactly once after it', async () => {
    const config = await createConfig(t, { maxQuota: 30, resetPeriod: 'daily' });
    await sql(t, "UPDATE member_quota_config SET created_at = '2025-06-01 00:00:00.000' WHERE id = ?", [config.id]);
    const { ids } = await seedMembers(t, 6, { membershipType: config.membershipType, balance: 30 });
    const resetsOf = async () =>
      sql<{ id: unknown; period_key: string }>(
        t,
        "SELECT id, period_key FROM quota_operations WHERE kind = 'periodic_reset' AND config_id = ? ORDER BY id",
        [config.id],
      );
    const scheduler = t.app.get(ResetScheduler);

    // The current period, caught up once (as after any start).
    now = new Date('2026-03-10T12:00:00.000Z');
    const first = await scheduler.tick();
    for (const id of first) await waitForOperation(t, admin, id);
    expect(await resetsOf()).toHaveLength(1);
    await sql(t, 'UPDATE members SET quota_balance = 10 WHERE membership_type = ?', [config.membershipType]);
    await sql(
      t,
      `INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor)
       SELECT id, -20, 10, 'consumption', 'system' FROM members WHERE membership_type = ?`,
      [config.membershipType],
    );

    await setReadOnly(t, admin, true, 'over midnight');
    now = new Date('2026-03-11T00:00:05.000Z');
    expect(await scheduler.tick()).toEqual([]);
    now = new Date('2026-03-11T09:00:00.000Z');
    expect(await scheduler.tick()).toEqual([]);
    await sleep(300);
    expect(await resetsOf()).toHaveLength(1);
    expect(await balances(t, ids)).toEqual(ids.map(() => 10));

    // Lifting the freeze catches up at once (no need to wait for the next tick), once.
    await setReadOnly(t, admin, false);
    await waitFor(async () => (await resetsOf()).length === 2, 10_000, 50);
    const resets = await resetsOf();
    expect(resets[1].period_key).toBe('daily:2026-03-11T00:00:00.000Z');
    const resetId = String(resets[1].id);
    expect(await waitForOperation(t, admin, resetId)).toMatchObject({ status: 'completed', processed: 6 });
    expect(await scheduler.tick()).toEqual([]);
    expect(await resetsOf()).toHaveLength(2);
    const rows = await rowsPerMember(t, resetId);
    expect(rows.size).toBe(6);
    expect([...rows.values()].every((n) => n === 1)).toBe(true);
    expect(await balances(t, ids)).toEqual(ids.map(() => 30));
    expect((await ledgerReport(t)).mismatches).toEqual([]);
  });

  it('holds that expire during the freeze read expired at once and give their units back after it', async () => {
    const service = (await loginAs(t, 'service')).token;
    const member = await createMember(t, { maxQuota: 20 });
    const hold = await request(t.server)
      .post(`/api/v1/quota/members/${member.id}/holds`)
      .set(bearer(service))
      .send({ amount: 7, ttl_seconds: 1 });
    expect(hold.status).toBe(201);
    const holdId = hold.body.data.hold_id as string;
    await setReadOnly(t, admin, true, 'holds wait');
    await sleep(2500);
    const stored = async () => {
      const rows = await sql<{ status: string }>(t, 'SELECT status FROM quota_holds WHERE id = ?', [holdId]);
      return rows[0].status;
    };
    expect(await stored()).toBe('held');
    const read = await request(t.server).get(`/api/v1/quota/holds/${holdId}`).set(bearer(service));
    expect(read.body.data.status).toBe('expired');
    const balance = await sql<{ quota_balance: unknown }>(t, 'SELECT quota_balance FROM members WHERE id = ?', [
      member.id,
    ]);
    expect(Number(balance[0].quota_balance)).toBe(13);

    await setReadOnly(t, admin, false);
    await waitFor(async () => (await stored()) === 'expired', 5_000, 50);
    const after = await sql<{ quota_balance: unknown }>(t, 'SELECT quota_balance FROM members WHERE id = ?', [
      member.id,
    ]);
    expect(Number(after[0].quota_balance)).toBe(20);
    expect((await ledgerReport(t, member.id)).mismatches).toEqual([]);
  });
});
