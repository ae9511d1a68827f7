import request from 'supertest';
import { TailProcessor } from '../../src/analytics/tail-processor.service';
import { sqlTimestamp } from '../../src/database/sql-session';
import { bearer } from '../support/auth';
import { sql } from '../support/quota-factories';
import type { TestApp } from '../support/test-app';

/** Analytics driven by the tests: no timer, no safety lag, detection on rows up to a day old. */
export const ANALYTICS_TEST_ENV = {
  THROTTLE_LIMIT: '0',
  QUOTA_ANALYTICS_INTERVAL_MS: '0',
  QUOTA_ANALYTICS_LAG_MS: '0',
  QUOTA_ANOMALY_MAX_AGE: '86400',
};

export const STATS = '/api/v1/admin/quota/stats';
export const ANOMALIES = '/api/v1/admin/quota/anomalies';

/** Runs the tail processor until it has folded in every row (the clock moves on first, lag 0). */
export async function processTail(t: TestApp): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, 5));
  const runs = await t.app.get(TailProcessor).drain(1000);
  return runs.reduce((n, r) => n + r.processed, 0);
}

export interface SyntheticRow {
  memberId: string;
  delta: number;
  balanceAfter: number;
  reason: string;
  at: Date;
  note?: string;
}

/** Ledger rows written straight to the table with chosen timestamps: synthetic traffic from the past. */
export async function insertHistory(t: TestApp, rows: readonly SyntheticRow[]): Promise<void> {
  for (const r of rows) {
    await sql(
      t,
      'INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor, note, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      [r.memberId, r.delta, r.balanceAfter, r.reason, 'system', r.note ?? null, sqlTimestamp(r.at)],
    );
  }
}

export function consume(t: TestApp, token: string, memberId: string, amount: number) {
  return request(t.server)
    .post(`/api/v1/quota/members/${memberId}/consume`)
    .set(bearer(token))
    .send({ amount })
    .expect(200);
}
