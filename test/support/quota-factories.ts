import { randomBytes } from 'node:crypto';
import { DataSource } from 'typeorm';
import { ConfigsService, type NewConfig } from '../../src/quota/configs.service';
import { checkLedger, type IntegrityReport } from '../../src/quota/integrity';
import { MembersService } from '../../src/quota/members.service';
import type { MemberView, QuotaConfigView } from '../../src/quota/quota.views';
import type { TestApp } from './test-app';

export function uniqueType(prefix = 't'): string {
  return `${prefix}${randomBytes(4).toString('hex')}`;
}

export function uniqueExternalId(prefix = 'ext'): string {
  return `${prefix}-${randomBytes(6).toString('hex')}`;
}

/** A quota config made through the service, as an admin would (audit row included). */
export function createConfig(t: TestApp, overrides: Partial<NewConfig> = {}): Promise<QuotaConfigView> {
  return t.app.get(ConfigsService).create('system', {
    membershipType: uniqueType(),
    maxQuota: 50,
    ...overrides,
  });
}

/** A member with its initial_grant row; a fresh config of max_quota 50 unless a type is given. */
export async function createMember(
  t: TestApp,
  options: { membershipType?: string; initialQuota?: number; externalId?: string; maxQuota?: number } = {},
): Promise<MemberView> {
  const membershipType =
    options.membershipType ?? (await createConfig(t, { maxQuota: options.maxQuota ?? 50 })).membershipType;
  return t.app.get(MembersService).create('system', {
    externalId: options.externalId ?? uniqueExternalId(),
    membershipType,
    initialQuota: options.initialQuota,
  });
}

export function sql<T = Record<string, unknown>>(t: TestApp, query: string, params: unknown[] = []): Promise<T[]> {
  return t.app.get(DataSource).query<T[]>(query, params);
}

export async function balanceOf(t: TestApp, memberId: string): Promise<number> {
  const rows = await sql<{ quota_balance: number }>(t, 'SELECT quota_balance FROM members WHERE id = ?', [memberId]);
  if (rows.length === 0) throw new Error(`no member ${memberId}`);
  return Number(rows[0].quota_balance);
}

export interface StoredHistory {
  id: string;
  delta: number;
  balance_after: number;
  reason: string;
  actor: string;
  idempotency_key: string | null;
  note: string | null;
}

export async function historyOf(t: TestApp, memberId: string): Promise<StoredHistory[]> {
  const rows = await sql<{
    id: string | number;
    delta: number;
    balance_after: number;
    reason: string;
    actor: string;
    idempotency_key: string | null;
    note: string | null;
  }>(
    t,
    'SELECT id, delta, balance_after, reason, actor, idempotency_key, note FROM member_quota_history WHERE member_id = ? ORDER BY id',
    [memberId],
  );
  return rows.map((r) => ({
    id: String(r.id),
    delta: Number(r.delta),
    balance_after: Number(r.balance_after),
    reason: r.reason,
    actor: r.actor,
    idempotency_key: r.idempotency_key,
    note: r.note,
  }));
}

export function ledgerReport(t: TestApp, memberId?: string): Promise<IntegrityReport> {
  return checkLedger((query, params) => sql(t, query, params), memberId);
}

/**
 * Everything the quota module stores, in a comparable form: to prove a refused request changed
 * nothing (timestamps included).
 */
export async function quotaSnapshot(t: TestApp): Promise<Record<string, unknown[]>> {
  const tables: Record<string, string> = {
    member_quota_config: 'SELECT * FROM member_quota_config ORDER BY id',
    members: 'SELECT * FROM members ORDER BY id',
    member_quota_history: 'SELECT * FROM member_quota_history ORDER BY id',
    idempotency_keys: 'SELECT * FROM idempotency_keys ORDER BY key_hash',
    quota_holds: 'SELECT * FROM quota_holds ORDER BY id',
    admin_audit_log: 'SELECT * FROM admin_audit_log ORDER BY id',
  };
  const snapshot: Record<string, unknown[]> = {};
  for (const [table, query] of Object.entries(tables)) {
    snapshot[table] = (await sql(t, query)).map((row) =>
      Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v instanceof Date ? v.toISOString() : v])),
    );
  }
  return snapshot;
}

/**
 * MariaDB only (its seq_1_to_N tables): `copies` more members of `memberId`'s type, external ids
 * `<prefix>-<n>`, and `rows` zero-delta ledger rows for each of them and for the member, one every
 * `secondsApart` seconds back from now, so the planner sees a ledger of a realistic size.
 */
export async function seedSpreadLedger(
  t: TestApp,
  memberId: string,
  options: { prefix: string; copies: number; rows: number; secondsApart: number },
): Promise<void> {
  const { prefix, copies, rows, secondsApart } = options;
  await sql(
    t,
    `INSERT INTO members (external_id, membership_type, quota_balance)
     SELECT CONCAT(?, '-', seq), membership_type, 0 FROM seq_1_to_${copies}, members WHERE members.id = ?`,
    [prefix, memberId],
  );
  await sql(
    t,
    `INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor, created_at)
     SELECT m.id, 0, 0, ELT(1 + s.seq % 4, 'consumption', 'refund', 'manual_adjustment', 'hold'), 'system',
            TIMESTAMPADD(SECOND, -s.seq * ${secondsApart}, NOW(3))
       FROM seq_1_to_${rows} s, members m WHERE m.id = ? OR m.external_id LIKE CONCAT(?, '-%')`,
    [memberId, prefix],
  );
}
