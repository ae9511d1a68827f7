import { SchedulerRegistry } from '@nestjs/schedule';
import { HOLD_EXPIRY_INTERVAL } from '../../src/quota/hold-expiry.service';
import { stopScheduled } from '../../src/common/periodic';
import { sqlTimestamp } from '../../src/database/sql-session';
import { loginAs } from '../support/auth';
import { ledgerReport, sql } from '../support/quota-factories';
import { freePort, spawnService, waitFor, waitUntilReady, type ServiceProcess } from '../support/service-process';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { baseTestEnv, deleteRedisKeys, startTestApp, type TestApp } from '../support/test-app';
import { seedMembers } from '../jobs/helpers';

/** Start-up of a built service on a busy two-core machine can take a while. */
const READY_MS = 45_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface MadeHold {
  readonly holdId: string;
  readonly memberId: string;
  readonly amount: number;
  readonly expiresAt: number;
}

/**
 * Holds whose time runs out while no service runs, then two service processes started on the same
 * database: every hold comes back exactly once, at start-up, also when one of the two is killed in
 * the middle of giving them back.
 */
describe('hold expiry across service kills (MariaDB, built service processes)', () => {
  jest.setTimeout(120_000);
  let database: TestDatabase;
  // In-process, for users, members and reads only: its own expiry sweep is stopped.
  let helper: TestApp;
  let token: string;
  const services: ServiceProcess[] = [];
  const prefixes: string[] = [];

  beforeAll(async () => {
    database = await createTestDatabase('mysql');
    helper = await startTestApp({ database });
    stopScheduled(helper.app.get(SchedulerRegistry), HOLD_EXPIRY_INTERVAL);
    token = (await loginAs(helper, 'service')).token;
  });

  const killAll = async () => {
    for (const s of services) if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
    await Promise.all(services.map((s) => s.exited()));
  };
  // A test that failed part-way leaves no service sweeping the next test's holds.
  afterEach(killAll);
  afterAll(async () => {
    await killAll();
    await helper?.close();
    for (const prefix of prefixes) await deleteRedisKeys(prefix);
    await database?.drop();
  });

  /** Spawns a built service on the database (rate limits off); `ready` waits for its readiness. */
  async function spawn(env: Record<string, string> = {}): Promise<ServiceProcess> {
    const base = baseTestEnv(database);
    prefixes.push(base.REDIS_PREFIX);
    const service = spawnService({
      ...base,
      PORT: String(await freePort()),
      HOST: '127.0.0.1',
      THROTTLE_LIMIT: '0',
      ...env,
    });
    services.push(service);
    return service;
  }

  async function kill(service: ServiceProcess): Promise<void> {
    service.child.kill('SIGKILL');
    await service.exited();
  }

  /** Makes holds through the service, `parallel` requests at a time. */
  async function makeHolds(
    service: ServiceProcess,
    plan: readonly { memberId: string; amount: number }[],
    ttlSeconds: number,
    parallel: number,
  ): Promise<MadeHold[]> {
    const made: MadeHold[] = new Array(plan.length);
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < plan.length; i = next++) {
        const res = await fetch(`${service.baseUrl}/api/v1/quota/members/${plan[i].memberId}/holds`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ amount: plan[i].amount, ttl_seconds: ttlSeconds }),
        });
        const body = (await res.json()) as { data: { hold_id: string; expires_at: string; status: string } };
        if (res.status !== 201) throw new Error(`hold ${i}: ${res.status} ${JSON.stringify(body)}`);
        made[i] = {
          holdId: body.data.hold_id,
          memberId: plan[i].memberId,
          amount: plan[i].amount,
          expiresAt: new Date(body.data.expires_at).getTime(),
        };
      }
    };
    await Promise.all(Array.from({ length: parallel }, worker));
    return made;
  }

  /**
   * Open holds written set-based, row for row as HoldsService.create writes them (the hold, its
   * `hold` ledger row naming it with the balance it left, the member's balance and quota_held),
   * all expiring at `expiresAt`: thousands in well under a second.
   */
  async function seedHolds(
    plan: readonly { memberId: string; amount: number }[],
    start: number,
    expiresAt: Date,
  ): Promise<MadeHold[]> {
    const createdBy = (await sql<{ id: unknown }>(helper, "SELECT id FROM users WHERE role = 'service' LIMIT 1"))[0].id;
    const createdAt = sqlTimestamp(new Date(expiresAt.getTime() - 60_000));
    const [{ last }] = await sql<{ last: unknown }>(helper, 'SELECT COALESCE(MAX(id), 0) AS last FROM quota_holds');
    for (let from = 0; from < plan.length; from += 500) {
      const part = plan.slice(from, from + 500);
      await sql(
        helper,
        `INSERT INTO quota_holds (member_id, amount, status, created_by, created_at, expires_at)
         VALUES ${part.map(() => "(?, ?, 'held', ?, ?, ?)").join(', ')}`,
        part.flatMap((p) => [p.memberId, p.amount, String(createdBy), createdAt, sqlTimestamp(expiresAt)]),
      );
    }
    const rows = await sql<{ id: unknown; member_id: unknown; amount: unknown }>(
      helper,
      'SELECT id, member_id, amount FROM quota_holds WHERE id > ? ORDER BY id',
      [last],
    );
    const holds = rows.map((r) => ({
      holdId: String(r.id),
      memberId: String(r.member_id),
      amount: Number(r.amount),
      expiresAt: expiresAt.getTime(),
    }));
    expect(holds).toHaveLength(plan.length);
    const balance = new Map<string, number>();
    for (let from = 0; from < holds.length; from += 500) {
      const part = holds.slice(from, from + 500).map((h) => {
        const after = (balance.get(h.memberId) ?? start) - h.amount;
        balance.set(h.memberId, after);
        return [h.memberId, -h.amount, after, String(createdBy), h.holdId, createdAt];
      });
      await sql(
        helper,
        `INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor, hold_id, created_at)
         VALUES ${part.map(() => "(?, ?, ?, 'hold', ?, ?, ?)").join(', ')}`,
        part.flat(),
      );
    }
    for (const [memberId, after] of balance) {
      await sql(helper, 'UPDATE members SET quota_balance = ?, quota_held = ? WHERE id = ?', [
        after,
        start - after,
        memberId,
      ]);
    }
    return holds;
  }

  async function countsOf(memberIds: readonly string[]) {
    const list = memberIds.map(() => '?').join(', ');
    const [holds] = await sql<{ held: unknown; expired: unknown; other: unknown }>(
      helper,
      `SELECT COALESCE(SUM(status = 'held'), 0) AS held, COALESCE(SUM(status = 'expired'), 0) AS expired,
              COALESCE(SUM(status NOT IN ('held', 'expired')), 0) AS other
         FROM quota_holds WHERE member_id IN (${list})`,
      [...memberIds],
    );
    const [released] = await sql<{ n: unknown }>(
      helper,
      `SELECT COUNT(*) AS n FROM member_quota_history WHERE reason = 'hold_release' AND member_id IN (${list})`,
      [...memberIds],
    );
    return {
      held: Number(holds.held),
      expired: Number(holds.expired),
      other: Number(holds.other),
      releaseRows: Number(released.n),
    };
  }

  async function balancesOf(memberIds: readonly string[]): Promise<Map<string, { balance: number; held: number }>> {
    const rows = await sql<{ id: unknown; quota_balance: unknown; quota_held: unknown }>(
      helper,
      `SELECT id, quota_balance, quota_held FROM members WHERE id IN (${memberIds.map(() => '?').join(', ')})`,
      [...memberIds],
    );
    return new Map(rows.map((r) => [String(r.id), { balance: Number(r.quota_balance), held: Number(r.quota_held) }]));
  }

  /** While no service runs: every hold still open and its units still out of the balance. */
  async function expectStillHeld(memberIds: readonly string[], holds: readonly MadeHold[], start: number) {
    expect(await countsOf(memberIds)).toEqual({ held: holds.length, expired: 0, other: 0, releaseRows: 0 });
    const heldBy = new Map<string, number>();
    for (const h of holds) heldBy.set(h.memberId, (heldBy.get(h.memberId) ?? 0) + h.amount);
    const now = await balancesOf(memberIds);
    for (const id of memberIds) {
      const held = heldBy.get(id) ?? 0;
      expect({ id, ...now.get(id) }).toEqual({ id, balance: start - held, held });
    }
  }

  /** Every hold expired exactly once: one `hold_release` row by `system` for its amount, balances whole again. */
  async function expectExpiredOnce(memberIds: readonly string[], holds: readonly MadeHold[], start: number) {
    const ids = holds.map((h) => h.holdId);
    const rows = await sql<{ hold_id: unknown; n: unknown; delta: unknown; actors: unknown }>(
      helper,
      `SELECT hold_id, COUNT(*) AS n, SUM(delta) AS delta, GROUP_CONCAT(DISTINCT actor) AS actors
         FROM member_quota_history WHERE reason = 'hold_release' AND member_id IN (${memberIds.map(() => '?').join(', ')})
        GROUP BY hold_id`,
      [...memberIds],
    );
    const byHold = new Map(rows.map((r) => [String(r.hold_id), r]));
    const wrong = holds.filter((h) => {
      const r = byHold.get(h.holdId);
      return !r || Number(r.n) !== 1 || Number(r.delta) !== h.amount || String(r.actors) !== 'system';
    });
    expect(wrong).toEqual([]);
    expect(rows).toHaveLength(ids.length);
    const consumed = await sql<{ n: unknown }>(
      helper,
      `SELECT COUNT(*) AS n FROM member_quota_history WHERE reason = 'consumption' AND member_id IN (${memberIds.map(() => '?').join(', ')})`,
      [...memberIds],
    );
    expect(Number(consumed[0].n)).toBe(0);
    const stored = await sql<{ status: string; committed_amount: unknown; released_amount: unknown; amount: unknown }>(
      helper,
      `SELECT status, committed_amount, released_amount, amount FROM quota_holds WHERE id IN (${ids.map(() => '?').join(', ')})`,
      ids,
    );
    expect(stored.filter((h) => h.status !== 'expired' || Number(h.committed_amount) !== 0)).toEqual([]);
    expect(stored.filter((h) => Number(h.released_amount) !== Number(h.amount))).toEqual([]);
    const now = await balancesOf(memberIds);
    for (const id of memberIds) expect({ id, ...now.get(id) }).toEqual({ id, balance: start, held: 0 });
    expect((await ledgerReport(helper)).mismatches).toEqual([]);
  }

  it('holds that lapse while no service runs come back exactly once when two services start', async () => {
    const { ids } = await seedMembers(helper, 5, { balance: 50, maxQuota: 50 });
    // This service never sweeps while it runs (its start-up sweep finds nothing).
    const maker = await spawn({ QUOTA_HOLD_EXPIRY_INTERVAL_MS: '60000' });
    await waitUntilReady(maker, READY_MS);
    const plan = Array.from({ length: 30 }, (_, i) => ({ memberId: ids[i % ids.length], amount: 1 + (i % 5) }));
    const holds = await makeHolds(maker, plan, 2, 10);
    const killedAt = Date.now();
    await kill(maker);
    expect(killedAt).toBeLessThan(Math.max(...holds.map((h) => h.expiresAt)));

    // Past every hold's time, with no service running: nothing has come back.
    await sleep(Math.max(0, Math.max(...holds.map((h) => h.expiresAt)) + 500 - Date.now()));
    await expectStillHeld(ids, holds, 50);

    const pair = await Promise.all([spawn(), spawn()]);
    await Promise.all(pair.map((s) => waitUntilReady(s, READY_MS)));
    const ready = Date.now();
    // Given back at start-up: within a few seconds of the services being up.
    await waitFor(async () => (await countsOf(ids)).held === 0, 5_000, 50);
    expect(Date.now() - ready).toBeLessThan(5_000);
    // Both keep sweeping for a while: nothing is given back twice.
    await sleep(1500);
    await expectExpiredOnce(ids, holds, 50);
  });

  it('2,000 holds lapsing at once, two services giving them back, one killed in the middle: each exactly once', async () => {
    const { ids } = await seedMembers(helper, 100, { balance: 100, maxQuota: 100 });
    const plan = Array.from({ length: 2000 }, (_, i) => ({ memberId: ids[i % ids.length], amount: 1 + (i % 3) }));
    const expiresAt = new Date(Date.now() + 1000);
    const holds = await seedHolds(plan, 100, expiresAt);
    expect((await ledgerReport(helper)).mismatches).toEqual([]);
    await sleep(Math.max(0, expiresAt.getTime() + 300 - Date.now()));
    await expectStillHeld(ids, holds, 100);

    const [victim, survivor] = await Promise.all([spawn(), spawn()]);
    // Both start-up sweeps run before their service is ready (onApplicationBootstrap); the
    // victim dies once it is up and the holds are still being given back.
    await waitUntilReady(victim, READY_MS);
    await waitFor(async () => (await countsOf(ids)).releaseRows >= 200, 30_000, 10);
    await kill(victim);
    const atKill = await countsOf(ids);
    expect(atKill.releaseRows).toBeLessThan(holds.length);

    await waitUntilReady(survivor, READY_MS);
    await waitFor(async () => (await countsOf(ids)).held === 0, 30_000, 100);
    await sleep(1500);
    expect(await countsOf(ids)).toEqual({ held: 0, expired: holds.length, other: 0, releaseRows: holds.length });
    await expectExpiredOnce(ids, holds, 100);
  });
});
