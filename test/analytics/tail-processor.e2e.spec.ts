import request from 'supertest';
import { TailProcessor } from '../../src/analytics/tail-processor.service';
import { bearer, loginAs } from '../support/auth';
import { createMember, sql } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';
import { ANALYTICS_TEST_ENV, consume, insertHistory, STATS } from './helpers';

async function watermark(t: TestApp): Promise<number> {
  const rows = await sql<{ last_history_id: unknown }>(
    t,
    "SELECT last_history_id FROM quota_analytics_state WHERE name = 'history_tail'",
  );
  return Number(rows[0].last_history_id);
}

describe('the ledger tail processor', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({ env: { ...ANALYTICS_TEST_ENV, QUOTA_ANALYTICS_LAG_MS: '60000' } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('never passes the watermark over a row younger than the safety lag, and stats stay exact meanwhile', async () => {
    const admin = (await loginAs(t, 'admin')).token;
    const service = (await loginAs(t, 'service')).token;
    const member = await createMember(t, { maxQuota: 100 });
    const old = new Date(Date.now() - 10 * 60_000);
    // The initial_grant row above is younger than the lag, so nothing can be folded in yet.
    await t.app.get(TailProcessor).drain();
    const before = await watermark(t);
    await insertHistory(t, [{ memberId: member.id, delta: -3, balanceAfter: 97, reason: 'consumption', at: old }]);
    await consume(t, service, member.id, 5);
    const runs = await t.app.get(TailProcessor).drain();
    expect(runs[0]).toEqual(expect.objectContaining({ ran: true, more: false }));
    expect(await watermark(t)).toBe(before);

    const res = await request(t.server)
      .get(`${STATS}?membership_type=${member.membershipType}&fresh=true`)
      .set(bearer(admin))
      .expect(200);
    expect(res.body.data.membership_types[0]).toEqual(
      expect.objectContaining({ members: 1, total_balance: 92, consumption: { count: 2, units: 8 } }),
    );
    const rolled = await sql<{ n: unknown }>(
      t,
      'SELECT COUNT(*) AS n FROM quota_stats_hourly WHERE membership_type = ?',
      [member.membershipType],
    );
    expect(Number(rolled[0].n)).toBe(0);
  });
});
