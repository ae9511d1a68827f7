import { createConnection, type Connection } from 'mysql2/promise';
import request from 'supertest';
import { TailProcessor } from '../../src/analytics/tail-processor.service';
import { sqlTimestamp } from '../../src/database/sql-session';
import { bearer, loginAs } from '../support/auth';
import { createMember, sql } from '../support/quota-factories';
import { parsePrometheusText, sampleValue } from '../support/prometheus';
import { mysqlServer } from '../support/test-database';
import { startTestApp, type TestApp } from '../support/test-app';
import { ANALYTICS_TEST_ENV, consume, processTail, STATS } from './helpers';

/**
 * A transaction held open on a second connection past the safety lag: its history row has an id
 * below rows that committed after it, so the watermark passes that id before the row is visible.
 */
describe('a ledger transaction that commits after the safety lag', () => {
  let t: TestApp;
  let admin: string;
  let service: string;

  beforeAll(async () => {
    t = await startTestApp({ env: ANALYTICS_TEST_ENV });
    admin = (await loginAs(t, 'admin')).token;
    service = (await loginAs(t, 'service')).token;
  });
  afterAll(async () => {
    await t?.close();
  });

  async function stats(type: string) {
    const res = await request(t.server)
      .get(`${STATS}?membership_type=${type}&fresh=true`)
      .set(bearer(admin))
      .expect(200);
    return res.body.data.membership_types[0];
  }

  async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    const { samples } = parsePrometheusText((await request(t.server).get('/metrics').expect(200)).text);
    return sampleValue(samples, name, labels) ?? 0;
  }

  /** Opens a transaction that consumes `amount` from the member and leaves it open. */
  async function openConsumption(memberId: string, amount: number): Promise<Connection> {
    const other = await createConnection({ ...mysqlServer, database: t.database.env.DB_DATABASE });
    await other.query('START TRANSACTION');
    await other.query('UPDATE members SET quota_balance = quota_balance - ? WHERE id = ?', [amount, memberId]);
    await other.query(
      `INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor)
       SELECT id, ?, quota_balance, 'consumption', 'system' FROM members WHERE id = ?`,
      [-amount, memberId],
    );
    return other;
  }

  /** Another member's consumption commits meanwhile, with a higher id; the tail passes both ids. */
  async function passTheWatermark(): Promise<void> {
    const bystander = await createMember(t, { maxQuota: 50 });
    await consume(t, service, bystander.id, 3);
    await processTail(t);
  }

  it('folds the row in once it commits, in the totals and the rollups, and finds no drift', async () => {
    const member = await createMember(t, { maxQuota: 100 });
    await processTail(t);
    const late = await metric('quota_analytics_late_rows_total');
    const other = await openConsumption(member.id, 4);
    try {
      await passTheWatermark();
      const gaps = await sql<{ n: unknown }>(t, 'SELECT COUNT(*) AS n FROM quota_analytics_gaps');
      expect(Number(gaps[0].n)).toBeGreaterThan(0);
      // Not committed: neither the balance nor the row counts yet, so nothing has drifted.
      expect(await stats(member.membershipType)).toEqual(expect.objectContaining({ members: 1, total_balance: 100 }));
      expect(await t.app.get(TailProcessor).reconcile()).toEqual([]);
      await other.query('COMMIT');
    } finally {
      await other.end();
    }

    const runs = await t.app.get(TailProcessor).drain();
    expect(runs[0]).toEqual(expect.objectContaining({ ran: true, late: 1 }));
    expect(await stats(member.membershipType)).toEqual(
      expect.objectContaining({ members: 1, total_balance: 96, consumption: { count: 1, units: 4 } }),
    );
    const rolled = await sql<{ n: unknown; units: unknown }>(
      t,
      "SELECT SUM(row_count) AS n, SUM(units) AS units FROM quota_stats_hourly WHERE membership_type = ? AND reason = 'consumption'",
      [member.membershipType],
    );
    expect([Number(rolled[0].n), Number(rolled[0].units)]).toEqual([1, 4]);
    expect(await metric('quota_analytics_late_rows_total')).toBe(late + 1);
    expect(await t.app.get(TailProcessor).reconcile()).toEqual([]);
    // Exactly once.
    expect((await t.app.get(TailProcessor).drain())[0]).toEqual(expect.objectContaining({ late: 0 }));
    expect(await stats(member.membershipType)).toEqual(expect.objectContaining({ total_balance: 96 }));
  });

  it('a row that commits after its gap was given up is put right by the reconciliation, which counts the drift', async () => {
    const member = await createMember(t, { maxQuota: 100 });
    await processTail(t);
    const other = await openConsumption(member.id, 2);
    try {
      await passTheWatermark();
      await sql(t, 'UPDATE quota_analytics_gaps SET seen_at = ?', [sqlTimestamp(new Date(Date.now() - 2 * 3_600_000))]);
      await processTail(t);
      expect(await sql(t, 'SELECT from_id FROM quota_analytics_gaps')).toEqual([]);
      await other.query('COMMIT');
    } finally {
      await other.end();
    }

    expect(await processTail(t)).toBe(0);
    expect(await stats(member.membershipType)).toEqual(expect.objectContaining({ total_balance: 100 }));
    const drift = await metric('quota_analytics_drift_total', { measure: 'balance' });
    expect(await t.app.get(TailProcessor).reconcile()).toEqual([
      { membershipType: member.membershipType, members: 0, balance: -2 },
    ]);
    expect(await metric('quota_analytics_drift_total', { measure: 'balance' })).toBe(drift + 2);
    expect(await stats(member.membershipType)).toEqual(expect.objectContaining({ members: 1, total_balance: 98 }));
  });
});
