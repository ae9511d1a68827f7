import request from 'supertest';
import { TailProcessor } from '../../src/analytics/tail-processor.service';
import { sqlTimestamp } from '../../src/database/sql-session';
import { bearer, loginAs } from '../support/auth';
import { createMember, sql } from '../support/quota-factories';
import { parsePrometheusText, sampleValue } from '../support/prometheus';
import { startTestApp, type TestApp } from '../support/test-app';
import { ANALYTICS_TEST_ENV, processTail, STATS } from './helpers';

/**
 * A row the watermark passed before it was visible. One writer cannot commit out of id order, so
 * these tests place rows by explicit id: a row with a higher id first (the watermark passes the
 * ids below it), then the "late" row in between, with its member's balance, as a transaction
 * that committed late leaves them. test/analytics/late-rows.mysql.spec.ts does it with a real
 * transaction held open on MariaDB.
 */
describe('ledger rows that become visible after the watermark passed their id', () => {
  let t: TestApp;
  let admin: string;

  beforeAll(async () => {
    t = await startTestApp({ env: ANALYTICS_TEST_ENV });
    admin = (await loginAs(t, 'admin')).token;
  });
  afterAll(async () => {
    await t?.close();
  });

  async function maxId(): Promise<number> {
    const rows = await sql<{ id: unknown }>(t, 'SELECT MAX(id) AS id FROM member_quota_history');
    return Number(rows[0].id);
  }

  /** A consumption row at an explicit id, with the member's balance moved as the ledger would. */
  async function consumeAt(memberId: string, id: number, amount: number): Promise<void> {
    const [member] = await sql<{ quota_balance: unknown }>(t, 'SELECT quota_balance FROM members WHERE id = ?', [
      memberId,
    ]);
    const after = Number(member.quota_balance) - amount;
    await sql(t, 'UPDATE members SET quota_balance = ? WHERE id = ?', [after, memberId]);
    await sql(
      t,
      "INSERT INTO member_quota_history (id, member_id, delta, balance_after, reason, actor, created_at) VALUES (?, ?, ?, ?, 'consumption', 'system', ?)",
      [id, memberId, -amount, after, sqlTimestamp(new Date(Date.now() - 1000))],
    );
  }

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

  const gaps = () =>
    sql<{ from_id: unknown; to_id: unknown }>(t, 'SELECT from_id, to_id FROM quota_analytics_gaps ORDER BY from_id');

  it('folds a late row in exactly once, and keeps looking for the rest of its gap', async () => {
    const member = await createMember(t, { maxQuota: 100 });
    await processTail(t);
    const base = await maxId();
    const lateBefore = await metric('quota_analytics_late_rows_total');

    await consumeAt(member.id, base + 5, 2);
    await processTail(t);
    expect((await gaps()).map((g) => [Number(g.from_id), Number(g.to_id)]).filter(([from]) => from > base)).toEqual([
      [base + 1, base + 4],
    ]);
    expect(await stats(member.membershipType)).toEqual(
      expect.objectContaining({ members: 1, total_balance: 98, consumption: { count: 1, units: 2 } }),
    );

    await consumeAt(member.id, base + 2, 7);
    const runs = await t.app.get(TailProcessor).drain();
    expect(runs[0]).toEqual(expect.objectContaining({ ran: true, processed: 1, late: 1 }));
    // The run folds it in, into the totals and the hourly rollups.
    expect(await stats(member.membershipType)).toEqual(
      expect.objectContaining({ members: 1, total_balance: 91, consumption: { count: 2, units: 9 } }),
    );
    const rolled = await sql<{ n: unknown; units: unknown }>(
      t,
      "SELECT SUM(row_count) AS n, SUM(units) AS units FROM quota_stats_hourly WHERE membership_type = ? AND reason = 'consumption'",
      [member.membershipType],
    );
    expect([Number(rolled[0].n), Number(rolled[0].units)]).toEqual([2, 9]);
    expect(await metric('quota_analytics_late_rows_total')).toBe(lateBefore + 1);
    // The rest of the gap is still looked for; the found id is not.
    expect((await gaps()).map((g) => [Number(g.from_id), Number(g.to_id)]).filter(([from]) => from > base)).toEqual([
      [base + 1, base + 1],
      [base + 3, base + 4],
    ]);

    // Exactly once: later runs do not fold it again, and nothing has drifted.
    expect((await t.app.get(TailProcessor).drain())[0]).toEqual(expect.objectContaining({ processed: 0, late: 0 }));
    expect(await t.app.get(TailProcessor).reconcile()).toEqual([]);
    expect(await stats(member.membershipType)).toEqual(expect.objectContaining({ total_balance: 91 }));
  });

  it('gives a gap up after its maximum age; the reconciliation then corrects the totals and counts the drift', async () => {
    const member = await createMember(t, { maxQuota: 100 });
    await processTail(t);
    const base = await maxId();
    await consumeAt(member.id, base + 3, 1);
    await processTail(t);

    // The gap has been looked for longer than QUOTA_ANALYTICS_GAP_MAX_AGE_MS (an hour by default).
    await sql(t, 'UPDATE quota_analytics_gaps SET seen_at = ?', [sqlTimestamp(new Date(Date.now() - 2 * 3_600_000))]);
    const expiredBefore = await metric('quota_analytics_gap_ids_expired_total');
    await processTail(t);
    expect(await gaps()).toEqual([]);
    expect(await metric('quota_analytics_gap_ids_expired_total')).toBeGreaterThanOrEqual(expiredBefore + 2);

    // The row commits after it was given up: the tail never folds it.
    await consumeAt(member.id, base + 1, 4);
    expect(await processTail(t)).toBe(0);
    expect(await stats(member.membershipType)).toEqual(expect.objectContaining({ members: 1, total_balance: 99 }));

    const balanceDrift = await metric('quota_analytics_drift_total', { measure: 'balance' });
    const membersDrift = await metric('quota_analytics_drift_total', { measure: 'members' });
    expect(await t.app.get(TailProcessor).reconcile()).toEqual([
      { membershipType: member.membershipType, members: 0, balance: -4 },
    ]);
    expect(await stats(member.membershipType)).toEqual(expect.objectContaining({ members: 1, total_balance: 95 }));
    expect(await metric('quota_analytics_drift_total', { measure: 'balance' })).toBe(balanceDrift + 4);
    expect(await metric('quota_analytics_drift_total', { measure: 'members' })).toBe(membersDrift);
    // Corrected once: the next check finds nothing.
    expect(await t.app.get(TailProcessor).reconcile()).toEqual([]);
  });

  it('reconciles on its own once the interval has passed, with what is not folded yet taken into account', async () => {
    const member = await createMember(t, { maxQuota: 100 });
    await processTail(t);
    // Drift the stored totals behind the ledger's back, then let rows wait after the watermark.
    await sql(
      t,
      'UPDATE quota_type_totals SET members = members + 2, balance = balance + 10 WHERE membership_type = ?',
      [member.membershipType],
    );
    await consumeAt(member.id, (await maxId()) + 1, 5);

    const reconciling = await startTestApp({
      env: { ...ANALYTICS_TEST_ENV, QUOTA_ANALYTICS_LAG_MS: '60000', QUOTA_ANALYTICS_RECONCILE_MS: '1' },
      database: t.database,
    });
    try {
      await new Promise((resolve) => setTimeout(resolve, 5));
      // The consumption is younger than the lag: it stays after the watermark, and is no drift.
      const [run] = await reconciling.app.get(TailProcessor).drain();
      expect(run).toEqual(expect.objectContaining({ ran: true, processed: 0 }));
      const totals = await sql<{ members: unknown; balance: unknown }>(
        t,
        'SELECT members, balance FROM quota_type_totals WHERE membership_type = ?',
        [member.membershipType],
      );
      expect([Number(totals[0].members), Number(totals[0].balance)]).toEqual([1, 100]);
      expect(await stats(member.membershipType)).toEqual(expect.objectContaining({ members: 1, total_balance: 95 }));
    } finally {
      await reconciling.close();
    }
  });
});
