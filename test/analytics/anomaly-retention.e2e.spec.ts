import { AnomalyRetention, PRUNE_BATCH } from '../../src/analytics/anomaly-retention.service';
import { sqlTimestamp } from '../../src/database/sql-session';
import { parsePrometheusText } from '../support/prometheus';
import { createConfig, createMember, sql } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';
import { ANALYTICS_TEST_ENV } from './helpers';
import request from 'supertest';

const DAY_MS = 86_400_000;

/** Stored events with chosen detection times, written straight to the table. */
async function insertAnomalies(t: TestApp, memberId: string, type: string, detectedAt: readonly Date[], tag: string) {
  const rows = detectedAt.map((at, i) => [
    memberId,
    type,
    'burst',
    `${tag}:${memberId}:${i}`,
    sqlTimestamp(at),
    sqlTimestamp(at),
    20,
  ]);
  for (let i = 0; i < rows.length; i += 500) {
    const chunk = rows.slice(i, i + 500);
    await sql(
      t,
      `INSERT INTO quota_anomalies (member_id, membership_type, kind, dedupe_key, occurred_at, detected_at, observed)
       VALUES ${chunk.map(() => '(?, ?, ?, ?, ?, ?, ?)').join(', ')}`,
      chunk.flat(),
    );
  }
}

async function storedKeys(t: TestApp, memberId: string): Promise<string[]> {
  const rows = await sql<{ dedupe_key: string }>(
    t,
    'SELECT dedupe_key FROM quota_anomalies WHERE member_id = ? ORDER BY id',
    [memberId],
  );
  return rows.map((r) => r.dedupe_key);
}

describe('anomaly retention', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({ env: { ...ANALYTICS_TEST_ENV, QUOTA_ANOMALY_RETENTION_DAYS: '30' } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('deletes events detected before the retention, in batches, and keeps the rest', async () => {
    const type = (await createConfig(t)).membershipType;
    const member = await createMember(t, { membershipType: type });
    const now = new Date();
    const old = Array.from({ length: PRUNE_BATCH + 7 }, (_, i) => new Date(now.getTime() - 40 * DAY_MS + i * 1000));
    const recent = [now.getTime() - 29 * DAY_MS, now.getTime() - DAY_MS, now.getTime()].map((ms) => new Date(ms));
    await insertAnomalies(t, member.id, type, old, 'old');
    await insertAnomalies(t, member.id, type, recent, 'recent');

    const deleted = await t.app.get(AnomalyRetention).prune(now);

    expect(deleted).toBe(PRUNE_BATCH + 7);
    expect(await storedKeys(t, member.id)).toEqual([0, 1, 2].map((i) => `recent:${member.id}:${i}`));
    const metrics = parsePrometheusText((await request(t.server).get('/metrics').expect(200)).text);
    expect(metrics.samples.find((s) => s.name === 'quota_anomalies_pruned_total')?.value).toBe(PRUNE_BATCH + 7);
    // Nothing left to delete: a second pass changes nothing.
    expect(await t.app.get(AnomalyRetention).prune(now)).toBe(0);
    expect(await storedKeys(t, member.id)).toHaveLength(3);
  });

  it('keeps everything when the retention is 0', async () => {
    const keepAll = await startTestApp({ env: { ...ANALYTICS_TEST_ENV, QUOTA_ANOMALY_RETENTION_DAYS: '0' } });
    try {
      const type = (await createConfig(keepAll)).membershipType;
      const member = await createMember(keepAll, { membershipType: type });
      await insertAnomalies(keepAll, member.id, type, [new Date(Date.now() - 3000 * DAY_MS)], 'ancient');
      expect(await keepAll.app.get(AnomalyRetention).prune()).toBe(0);
      expect(await storedKeys(keepAll, member.id)).toEqual([`ancient:${member.id}:0`]);
    } finally {
      await keepAll.close();
    }
  });
});
