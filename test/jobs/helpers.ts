import request from 'supertest';
import { DataSource } from 'typeorm';
import { bearer } from '../support/auth';
import { createConfig, sql } from '../support/quota-factories';
import type { TestApp } from '../support/test-app';

export const BULK = '/api/v1/admin/quota/bulk-adjust';
export const OPERATIONS = '/api/v1/admin/quota/operations';

/**
 * Members of a fresh type (or the given one) with their initial_grant rows, written set-based:
 * thousands of members in well under a second on either driver.
 */
export async function seedMembers(
  t: TestApp,
  count: number,
  options: { membershipType?: string; balance?: number; maxQuota?: number } = {},
): Promise<{ membershipType: string; ids: string[] }> {
  const membershipType =
    options.membershipType ?? (await createConfig(t, { maxQuota: options.maxQuota ?? 100 })).membershipType;
  const balance = options.balance ?? 50;
  const ds = t.app.get(DataSource);
  const tag = `${membershipType}-${Date.now().toString(36)}`;
  for (let start = 0; start < count; start += 1000) {
    const n = Math.min(1000, count - start);
    const values: unknown[] = [];
    for (let i = 0; i < n; i++) values.push(`${tag}-${start + i}`, membershipType, balance);
    await ds.query(
      `INSERT INTO members (external_id, membership_type, quota_balance) VALUES ${new Array(n).fill('(?, ?, ?)').join(', ')}`,
      values,
    );
  }
  await ds.query(
    `INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor)
     SELECT id, quota_balance, quota_balance, 'initial_grant', 'system' FROM members
      WHERE membership_type = ? AND id NOT IN (SELECT member_id FROM member_quota_history)`,
    [membershipType],
  );
  const rows = await sql<{ id: unknown }>(t, 'SELECT id FROM members WHERE membership_type = ? ORDER BY id', [
    membershipType,
  ]);
  return { membershipType, ids: rows.map((r) => String(r.id)) };
}

export interface OperationBody {
  id: string;
  status: string;
  total: number;
  processed: number;
  changed: number;
  failed: number;
  error: string | null;
  [key: string]: unknown;
}

export async function getOperation(t: TestApp, token: string, id: string): Promise<OperationBody> {
  const res = await request(t.server).get(`${OPERATIONS}/${id}`).set(bearer(token));
  if (res.status !== 200) throw new Error(`GET operation ${id}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.data as OperationBody;
}

export async function waitForOperation(
  t: TestApp,
  token: string,
  id: string,
  statuses: readonly string[] = ['completed', 'failed', 'cancelled'],
  timeoutMs = 20_000,
): Promise<OperationBody> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const op = await getOperation(t, token, id);
    if (statuses.includes(op.status)) return op;
    if (Date.now() > deadline) throw new Error(`operation ${id} still ${op.status}: ${JSON.stringify(op)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Per member: how many history rows the operation wrote. */
export async function rowsPerMember(t: TestApp, operationId: string): Promise<Map<string, number>> {
  const rows = await sql<{ member_id: unknown; n: unknown }>(
    t,
    'SELECT member_id, COUNT(*) AS n FROM member_quota_history WHERE operation_id = ? GROUP BY member_id',
    [operationId],
  );
  return new Map(rows.map((r) => [String(r.member_id), Number(r.n)]));
}

export async function balances(t: TestApp, ids: readonly string[]): Promise<number[]> {
  const rows = await sql<{ id: unknown; quota_balance: unknown }>(
    t,
    `SELECT id, quota_balance FROM members WHERE id IN (${ids.map(() => '?').join(', ')}) ORDER BY id`,
    [...ids],
  );
  return rows.map((r) => Number(r.quota_balance));
}

export async function operationCount(t: TestApp): Promise<number> {
  const rows = await sql<{ n: unknown }>(t, 'SELECT COUNT(*) AS n FROM quota_operations');
  return Number(rows[0].n);
}
