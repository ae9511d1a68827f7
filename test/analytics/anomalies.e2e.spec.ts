import request from 'supertest';
import { ROOT_LOGGER } from '../../src/common/logger.token';
import { bearer, loginAs } from '../support/auth';
import { createConfig, createMember, sql } from '../support/quota-factories';
import { parsePrometheusText } from '../support/prometheus';
import { startTestApp, type TestApp } from '../support/test-app';
import { expectProblem, ISO_MS } from '../auth/helpers';
import { ANALYTICS_TEST_ENV, ANOMALIES, consume, insertHistory, processTail, type SyntheticRow } from './helpers';

const WINDOW = 300_000;

interface StoredAnomaly {
  member_id: string;
  kind: string;
}

async function anomaliesOf(t: TestApp, memberId: string): Promise<string[]> {
  const rows = await sql<StoredAnomaly>(
    t,
    'SELECT member_id, kind FROM quota_anomalies WHERE member_id = ? ORDER BY id',
    [memberId],
  );
  return rows.map((r) => r.kind);
}

describe('anomaly detection on synthetic traffic', () => {
  let t: TestApp;
  let admin: string;
  let operator: string;
  let service: string;
  let warn: jest.SpyInstance;

  beforeAll(async () => {
    t = await startTestApp({ env: ANALYTICS_TEST_ENV });
    admin = (await loginAs(t, 'admin')).token;
    operator = (await loginAs(t, 'operator')).token;
    service = (await loginAs(t, 'service')).token;
    const logger = t.app.get<{ warn: (...args: unknown[]) => void }>(ROOT_LOGGER);
    warn = jest.spyOn(logger, 'warn');
  });
  afterAll(async () => {
    warn?.mockRestore();
    await t?.close();
  });

  it('flags an outlier against its own baseline and its cohort, never the normal members', async () => {
    const type = (await createConfig(t, { maxQuota: 100_000 })).membershipType;
    const normal = [];
    for (let i = 0; i < 5; i++) normal.push(await createMember(t, { membershipType: type, initialQuota: 100_000 }));
    const outlier = await createMember(t, { membershipType: type, initialQuota: 100_000 });

    // 13 windows of ordinary use (8-12 units each, in one or two consumes), ending before now.
    const base = Math.floor(Date.now() / WINDOW) * WINDOW - 14 * WINDOW;
    const rows: SyntheticRow[] = [];
    for (const member of [...normal, outlier]) {
      let balance = 100_000;
      for (let k = 0; k < 13; k++) {
        const units = 8 + ((k + Number(member.id)) % 3) * 2;
        for (const [part, offset] of [
          [Math.floor(units / 2), 20_000],
          [units - Math.floor(units / 2), 140_000],
        ]) {
          balance -= part;
          rows.push({
            memberId: member.id,
            delta: -part,
            balanceAfter: balance,
            reason: 'consumption',
            at: new Date(base + k * WINDOW + offset),
          });
        }
      }
      if (member === outlier) {
        // Then 200 units in one window: four consumes a minute apart (not a burst).
        for (let j = 0; j < 4; j++) {
          balance -= 50;
          rows.push({
            memberId: member.id,
            delta: -50,
            balanceAfter: balance,
            reason: 'consumption',
            at: new Date(base + 13 * WINDOW + 10_000 + j * 60_000),
          });
        }
      }
    }
    await insertHistory(t, rows);
    await processTail(t);

    for (const member of normal) expect(await anomaliesOf(t, member.id)).toEqual([]);
    expect((await anomaliesOf(t, outlier.id)).sort()).toEqual(['cohort_outlier', 'usage_spike']);

    const res = await request(t.server).get(`${ANOMALIES}?member_id=${outlier.id}`).set(bearer(operator));
    expect(res.status).toBe(200);
    const spike = (res.body.data as Array<Record<string, unknown>>).find((a) => a.kind === 'usage_spike')!;
    expect(spike).toEqual({
      id: expect.stringMatching(/^\d+$/),
      member_id: outlier.id,
      membership_type: type,
      kind: 'usage_spike',
      occurred_at: expect.stringMatching(ISO_MS),
      detected_at: expect.stringMatching(ISO_MS),
      observed: expect.any(Number),
      expected: expect.any(Number),
      detail: expect.stringContaining('own baseline'),
    });
    expect(spike.observed as number).toBeGreaterThan(30);
    expect(spike.expected as number).toBeGreaterThan(8);
    expect(spike.expected as number).toBeLessThan(13);
    expect(warn).toHaveBeenCalledWith(
      expect.objectContaining({ anomaly: 'usage_spike', member_id: outlier.id }),
      expect.stringContaining('quota anomaly'),
    );

    // Processing again (nothing new) stores nothing twice.
    await processTail(t);
    expect((await anomaliesOf(t, outlier.id)).length).toBe(2);
  });

  it('flags a burst of consumes within seconds once', async () => {
    const member = await createMember(t, { maxQuota: 1000 });
    const calm = await createMember(t, { membershipType: member.membershipType });
    for (let i = 0; i < 25; i++) await consume(t, service, member.id, 1);
    for (let i = 0; i < 5; i++) await consume(t, service, calm.id, 1);
    await processTail(t);
    expect(await anomaliesOf(t, member.id)).toEqual(['burst']);
    expect(await anomaliesOf(t, calm.id)).toEqual([]);
    await processTail(t);
    expect(await anomaliesOf(t, member.id)).toEqual(['burst']);
  });

  it('reports the 80% and 100% threshold crossings once per member and period', async () => {
    const member = await createMember(t, { maxQuota: 10 });
    await consume(t, service, member.id, 8);
    await processTail(t);
    expect(await anomaliesOf(t, member.id)).toEqual(['threshold_80']);
    await consume(t, service, member.id, 1);
    await processTail(t);
    expect(await anomaliesOf(t, member.id)).toEqual(['threshold_80']);
    await consume(t, service, member.id, 1);
    await processTail(t);
    expect(await anomaliesOf(t, member.id)).toEqual(['threshold_80', 'threshold_100']);
    // A refund and another consume within the same period do not repeat them.
    await request(t.server)
      .post(`/api/v1/quota/members/${member.id}/refund`)
      .set(bearer(service))
      .send({ amount: 5 })
      .expect(200);
    await consume(t, service, member.id, 5);
    await processTail(t);
    expect(await anomaliesOf(t, member.id)).toEqual(['threshold_80', 'threshold_100']);

    // A new period (a periodic reset in the ledger) arms them again.
    await insertHistory(t, [
      { memberId: member.id, delta: 10, balanceAfter: 10, reason: 'periodic_reset', at: new Date() },
      { memberId: member.id, delta: -9, balanceAfter: 1, reason: 'consumption', at: new Date() },
    ]);
    await processTail(t);
    expect(await anomaliesOf(t, member.id)).toEqual(['threshold_80', 'threshold_100', 'threshold_80']);
  });

  it('lists anomalies newest first with since, kind and keyset paging; counts them in metrics', async () => {
    const all = await request(t.server).get(`${ANOMALIES}?limit=500`).set(bearer(admin)).expect(200);
    const total = all.body.data.length as number;
    expect(total).toBeGreaterThanOrEqual(6);
    const ids = (all.body.data as Array<{ id: string }>).map((a) => Number(a.id));
    expect(ids).toEqual([...ids].sort((a, b) => b - a));

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: request.Response = await request(t.server)
        .get(`${ANOMALIES}?limit=2${cursor ? `&cursor=${cursor}` : ''}`)
        .set(bearer(admin))
        .expect(200);
      expect(page.body.meta.limit).toBe(2);
      seen.push(...(page.body.data as Array<{ id: string }>).map((a) => a.id));
      cursor = page.body.meta.next_cursor as string | null;
    } while (cursor);
    expect(seen).toEqual((all.body.data as Array<{ id: string }>).map((a) => a.id));

    const bursts = await request(t.server).get(`${ANOMALIES}?kind=burst`).set(bearer(admin)).expect(200);
    expect(bursts.body.data.map((a: { kind: string }) => a.kind)).toEqual(['burst']);
    const future = await request(t.server)
      .get(`${ANOMALIES}?since=${new Date(Date.now() + 60_000).toISOString()}`)
      .set(bearer(admin))
      .expect(200);
    expect(future.body).toEqual({ data: [], meta: { limit: 50, next_cursor: null } });

    const metrics = parsePrometheusText((await request(t.server).get('/metrics').expect(200)).text);
    const count = (kind: string) =>
      metrics.samples.find((s) => s.name === 'quota_anomalies_total' && s.labels.kind === kind)?.value ?? 0;
    expect(count('burst')).toBe(1);
    expect(count('usage_spike')).toBe(1);
    expect(count('threshold_80')).toBe(2);
  });

  it('refuses bad input with 422 and non-readers with 403', async () => {
    for (const query of [
      'since=yesterday',
      'kind=weird',
      'limit=0',
      'limit=501',
      'cursor=bad!',
      'member_id=abc',
      'page=1',
    ]) {
      expectProblem(await request(t.server).get(`${ANOMALIES}?${query}`).set(bearer(admin)), 422, 'validation_failed');
    }
    expectProblem(
      await request(t.server)
        .get(`${ANOMALIES}?cursor=${Buffer.from('x:1').toString('base64url')}`)
        .set(bearer(admin)),
      422,
      'validation_failed',
    );
    await request(t.server).get(ANOMALIES).set(bearer(service)).expect(403);
  });
});
