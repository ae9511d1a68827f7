import request from 'supertest';
import { bearer, loginAs } from '../support/auth';
import { createConfig, createMember, sql } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';
import { expectProblem, ISO_MS } from '../auth/helpers';
import { StatsService } from '../../src/analytics/stats.service';
import { ANALYTICS_TEST_ENV, consume, insertHistory, processTail, STATS } from './helpers';

const HOUR = 3_600_000;

interface Expected {
  members: Map<string, { members: number; balance: number }>;
  reasons: Map<string, Map<string, { count: number; units: number; net_delta: number }>>;
}

/** The straightforward aggregate, computed independently of the service: members and ledger joined. */
async function independentAggregate(t: TestApp, from: Date, to: Date): Promise<Expected> {
  const members = await sql<{ membership_type: string; n: unknown; balance: unknown }>(
    t,
    'SELECT membership_type, COUNT(*) AS n, SUM(quota_balance) AS balance FROM members GROUP BY membership_type',
  );
  const rows = await sql<{ membership_type: string; reason: string; delta: unknown; created_at: unknown }>(
    t,
    'SELECT m.membership_type, h.reason, h.delta, h.created_at FROM member_quota_history h JOIN members m ON m.id = h.member_id',
  );
  const reasons = new Map<string, Map<string, { count: number; units: number; net_delta: number }>>();
  for (const r of rows) {
    const at = r.created_at instanceof Date ? r.created_at : new Date(`${String(r.created_at).replace(' ', 'T')}Z`);
    if (at < from || at >= to) continue;
    const byReason = reasons.get(r.membership_type) ?? new Map();
    const cell = byReason.get(r.reason) ?? { count: 0, units: 0, net_delta: 0 };
    cell.count += 1;
    cell.units += Math.abs(Number(r.delta));
    cell.net_delta += Number(r.delta);
    byReason.set(r.reason, cell);
    reasons.set(r.membership_type, byReason);
  }
  return {
    members: new Map(members.map((m) => [m.membership_type, { members: Number(m.n), balance: Number(m.balance) }])),
    reasons,
  };
}

describe('GET /admin/quota/stats', () => {
  let t: TestApp;
  let admin: string;
  let operator: string;
  let service: string;

  beforeAll(async () => {
    t = await startTestApp({ env: { ...ANALYTICS_TEST_ENV, QUOTA_STATS_TTL: '300' } });
    admin = (await loginAs(t, 'admin')).token;
    operator = (await loginAs(t, 'operator')).token;
    service = (await loginAs(t, 'service')).token;
  });
  afterAll(async () => {
    await t?.close();
  });

  it('matches an independent aggregate: rollups + live tail + partial edge hours, and type changes', async () => {
    const gold = await createConfig(t, { maxQuota: 100 });
    const silver = await createConfig(t, { maxQuota: 40 });
    const g = [];
    for (let i = 0; i < 3; i++) g.push(await createMember(t, { membershipType: gold.membershipType }));
    const s1 = await createMember(t, { membershipType: silver.membershipType });
    const s2 = await createMember(t, { membershipType: silver.membershipType, initialQuota: 7 });

    // Past traffic spread over several hours; consume + refund pairs keep each balance equal to its ledger sum.
    const now = Date.now();
    const past = [];
    for (let k = 1; k <= 30; k++) {
      const member = [g[0], g[1], s1][k % 3];
      const at = new Date(now - k * 17 * 60_000);
      past.push({ memberId: member.id, delta: -k, balanceAfter: 1, reason: 'consumption', at });
      past.push({
        memberId: member.id,
        delta: k,
        balanceAfter: 1,
        reason: 'refund',
        at: new Date(at.getTime() + 1000),
      });
    }
    await insertHistory(t, past);
    await consume(t, service, g[0].id, 5);
    await consume(t, service, s1.id, 3);
    expect(await processTail(t)).toBeGreaterThan(60);

    // After the watermark: live traffic and a membership change (the tail is aggregated live).
    await consume(t, service, g[1].id, 11);
    await consume(t, service, g[2].id, 2);
    await request(t.server)
      .patch(`/api/v1/admin/members/${g[2].id}`)
      .set(bearer(admin))
      .send({ membership_type: silver.membershipType })
      .expect(200);
    await consume(t, service, g[2].id, 1);
    await consume(t, service, s2.id, 7);
    // Rows after the watermark that fall in whole hours of the window (ids commit late, times are old).
    await insertHistory(t, [
      { memberId: g[0].id, delta: -9, balanceAfter: 1, reason: 'consumption', at: new Date(now - 2 * HOUR) },
      { memberId: g[0].id, delta: 9, balanceAfter: 1, reason: 'refund', at: new Date(now - 2 * HOUR + 1) },
      { memberId: g[2].id, delta: -4, balanceAfter: 1, reason: 'consumption', at: new Date(now - 3 * HOUR) },
      { memberId: g[2].id, delta: 4, balanceAfter: 1, reason: 'refund', at: new Date(now - 3 * HOUR + 1) },
    ]);

    // A window whose ends fall inside hours, so both edges are read from the ledger.
    const from = new Date(now - 5 * HOUR - 13 * 60_000);
    const to = new Date(now + 60_000);
    const res = await request(t.server)
      .get(`${STATS}?from=${from.toISOString()}&to=${to.toISOString()}&fresh=true`)
      .set(bearer(operator));
    expect(res.status).toBe(200);
    expect(res.headers['x-cache']).toBe('MISS');
    expect(res.body.meta).toEqual({ cached: false, generated_at: expect.stringMatching(ISO_MS), ttl_seconds: 300 });
    expect(res.body.data.window).toEqual({ from: from.toISOString(), to: to.toISOString() });

    const expected = await independentAggregate(t, from, to);
    const byType = new Map<string, Record<string, unknown>>(
      (res.body.data.membership_types as Array<Record<string, unknown>>).map((x) => [x.membership_type as string, x]),
    );
    for (const type of [gold.membershipType, silver.membershipType]) {
      const got = byType.get(type)!;
      const want = expected.members.get(type)!;
      expect({ members: got.members, total_balance: got.total_balance }).toEqual({
        members: want.members,
        total_balance: want.balance,
      });
    }
    const gotGold = byType.get(gold.membershipType)!;
    expect(gotGold.max_quota).toBe(100);
    expect(gotGold.total_max_quota).toBe(200);
    expect(gotGold.utilisation).toBeCloseTo(1 - (gotGold.total_balance as number) / 200, 4);

    // Every row of the window once, per reason (types aside: the moved member's earlier rows count
    // for the type it had then, the naive join puts them under its current type).
    const wantReasons: Record<string, { count: number; units: number; net_delta: number }> = {};
    for (const byReason of expected.reasons.values()) {
      for (const [reason, c] of byReason) {
        const w = (wantReasons[reason] ??= { count: 0, units: 0, net_delta: 0 });
        w.count += c.count;
        w.units += c.units;
        w.net_delta += c.net_delta;
      }
    }
    expect(res.body.data.totals.by_reason).toEqual(wantReasons);
    expect(res.body.data.totals.consumption).toEqual({
      count: wantReasons.consumption.count,
      units: wantReasons.consumption.units,
    });
    // The silver type without the moved member's history matches the naive join exactly.
    const silverWant = expected.reasons.get(silver.membershipType)!;
    expect((byType.get(silver.membershipType)!.by_reason as Record<string, unknown>).refund).toEqual(
      silverWant.get('refund'),
    );

    // Once processed, the same answer comes from the rollups alone.
    await processTail(t);
    const again = await request(t.server)
      .get(`${STATS}?from=${from.toISOString()}&to=${to.toISOString()}&fresh=true`)
      .set(bearer(admin))
      .expect(200);
    expect(again.body.data.membership_types).toEqual(res.body.data.membership_types);
    expect(again.body.data.totals).toEqual(res.body.data.totals);
    expect(Number(again.body.data.rollup_watermark)).toBeGreaterThan(Number(res.body.data.rollup_watermark));

    // A window that ended in the past: its last partial hour is read from the ledger.
    const pastTo = new Date(now - 47 * 60_000);
    const ended = await request(t.server)
      .get(`${STATS}?from=${from.toISOString()}&to=${pastTo.toISOString()}&fresh=true`)
      .set(bearer(admin))
      .expect(200);
    const pastWant = await independentAggregate(t, from, pastTo);
    const pastReasons: Record<string, { count: number; units: number; net_delta: number }> = {};
    for (const byReason of pastWant.reasons.values()) {
      for (const [reason, c] of byReason) {
        const w = (pastReasons[reason] ??= { count: 0, units: 0, net_delta: 0 });
        w.count += c.count;
        w.units += c.units;
        w.net_delta += c.net_delta;
      }
    }
    expect(ended.body.data.totals.by_reason).toEqual(pastReasons);
    expect(ended.body.data.totals.history_rows).toBeLessThan(res.body.data.totals.history_rows);

    // Filtered by type: only that type.
    const one = await request(t.server)
      .get(`${STATS}?membership_type=${gold.membershipType}&from=${from.toISOString()}&to=${to.toISOString()}`)
      .set(bearer(admin))
      .expect(200);
    expect(one.body.data.membership_types.map((x: { membership_type: string }) => x.membership_type)).toEqual([
      gold.membershipType,
    ]);
    expect(one.body.data.membership_types[0]).toEqual(byType.get(gold.membershipType));
  });

  it('caches per normalised filter: MISS, then HIT with the same generated_at; fresh=true recomputes', async () => {
    const type = (await createConfig(t, { maxQuota: 10 })).membershipType;
    const member = await createMember(t, { membershipType: type });
    const url = `${STATS}?membership_type=${type}`;
    const first = await request(t.server).get(url).set(bearer(admin)).expect(200);
    expect(first.headers['x-cache']).toBe('MISS');
    expect(first.body.meta.cached).toBe(false);

    await consume(t, service, member.id, 4);
    const second = await request(t.server).get(url).set(bearer(operator)).expect(200);
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.body.meta).toEqual({ ...first.body.meta, cached: true });
    expect(second.body.data).toEqual(first.body.data);
    expect(second.body.data.membership_types[0].total_balance).toBe(10);

    // The same window spelled differently shares the entry; another filter does not.
    const from = '2026-01-01T00:00:00Z';
    const a = await request(t.server).get(`${url}&from=${from}&to=2026-01-02T00:00:00.000Z`).set(bearer(admin));
    const b = await request(t.server)
      .get(`${url}&from=2026-01-01T00:00:00.000Z&to=2026-01-02T00:00:00Z`)
      .set(bearer(admin));
    expect([a.headers['x-cache'], b.headers['x-cache']]).toEqual(['MISS', 'HIT']);

    const fresh = await request(t.server).get(`${url}&fresh=true`).set(bearer(admin)).expect(200);
    expect(fresh.headers['x-cache']).toBe('MISS');
    expect(fresh.body.data.membership_types[0].total_balance).toBe(6);
    expect(fresh.body.data.membership_types[0].consumption).toEqual({ count: 1, units: 4 });
    // ... and refreshes the entry for the next reader.
    const after = await request(t.server).get(url).set(bearer(admin)).expect(200);
    expect(after.headers['x-cache']).toBe('HIT');
    expect(after.body.meta.generated_at).toBe(fresh.body.meta.generated_at);
  });

  it('runs one computation for requests that miss together; fresh=true computes for each', async () => {
    const type = (await createConfig(t, { maxQuota: 7 })).membershipType;
    await createMember(t, { membershipType: type });
    const url = `${STATS}?membership_type=${type}`;
    const computations = jest.spyOn(t.app.get(StatsService), 'compute');
    try {
      const together = await Promise.all(
        Array.from({ length: 8 }, () => request(t.server).get(url).set(bearer(admin))),
      );
      expect(together.map((r) => r.status)).toEqual(Array(8).fill(200));
      // On MySQL the requests overlap the computation and join it; on the embedded database it ends
      // before the next request is read, and they hit the cache. Either way: one computation.
      expect(computations).toHaveBeenCalledTimes(1);
      const misses = together.filter((r) => r.headers['x-cache'] === 'MISS');
      expect(misses.length).toBeGreaterThanOrEqual(1);
      // Whether shared or read back from the cache, every answer is that one computation.
      expect(new Set(together.map((r) => r.body.meta.generated_at)).size).toBe(1);
      expect(together.every((r) => r.body.data.membership_types[0].total_balance === 7)).toBe(true);

      computations.mockClear();
      const fresh = await Promise.all(
        Array.from({ length: 3 }, () => request(t.server).get(`${url}&fresh=true`).set(bearer(admin))),
      );
      expect(fresh.map((r) => [r.status, r.headers['x-cache']])).toEqual(Array(3).fill([200, 'MISS']));
      expect(computations).toHaveBeenCalledTimes(3);
    } finally {
      computations.mockRestore();
    }
  });

  it('refuses bad filters with 422 and unknown parameters', async () => {
    for (const query of [
      'from=yesterday',
      'to=2026-13-01T00:00:00Z',
      'membership_type=Not A Slug',
      'fresh=maybe',
      'from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z',
      'page=2',
    ]) {
      const res = await request(t.server).get(`${STATS}?${query}`).set(bearer(admin));
      expectProblem(res, 422, 'validation_failed');
    }
  });

  it('is for admins and operators only', async () => {
    await request(t.server).get(STATS).set(bearer(service)).expect(403);
    await request(t.server).get(STATS).expect(401);
  });
});

describe('stats cache TTL', () => {
  let t: TestApp;
  let admin: string;

  beforeAll(async () => {
    t = await startTestApp({ env: { ...ANALYTICS_TEST_ENV, QUOTA_STATS_TTL: '1' } });
    admin = (await loginAs(t, 'admin')).token;
  });
  afterAll(async () => {
    await t?.close();
  });

  it('expires entries after QUOTA_STATS_TTL seconds', async () => {
    const first = await request(t.server).get(STATS).set(bearer(admin)).expect(200);
    expect(first.headers['x-cache']).toBe('MISS');
    expect(first.body.meta.ttl_seconds).toBe(1);
    expect((await request(t.server).get(STATS).set(bearer(admin))).headers['x-cache']).toBe('HIT');
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const later = await request(t.server).get(STATS).set(bearer(admin)).expect(200);
    expect(later.headers['x-cache']).toBe('MISS');
    expect(later.body.meta.generated_at > first.body.meta.generated_at).toBe(true);
  });
});

describe('stats with caching off (QUOTA_STATS_TTL=0)', () => {
  let t: TestApp;
  let admin: string;

  beforeAll(async () => {
    t = await startTestApp({ env: { ...ANALYTICS_TEST_ENV, QUOTA_STATS_TTL: '0' } });
    admin = (await loginAs(t, 'admin')).token;
  });
  afterAll(async () => {
    await t?.close();
  });

  it('computes every request, even requests that arrive together', async () => {
    const computations = jest.spyOn(t.app.get(StatsService), 'compute');
    try {
      const answers = await Promise.all(
        Array.from({ length: 4 }, () => request(t.server).get(STATS).set(bearer(admin))),
      );
      expect(answers.map((r) => [r.status, r.headers['x-cache'], r.body.meta.cached])).toEqual(
        Array(4).fill([200, 'MISS', false]),
      );
      expect(computations).toHaveBeenCalledTimes(4);
    } finally {
      computations.mockRestore();
    }
  });
});
