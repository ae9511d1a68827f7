import request from 'supertest';
import { DataSource } from 'typeorm';
import { formatQuotaVerify, runQuotaVerify } from '../../src/cli/quota-verify.command';
import { QuotaLedger1763900200000 } from '../../src/database/migrations/1763900200000-QuotaLedger';
import { bearer, loginAs } from '../support/auth';
import { createMember, historyOf, quotaSnapshot, sql } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';
import { expectProblem, ISO_MS, sleep } from '../auth/helpers';

const HISTORY = '/api/v1/admin/quota/history';
const INTEGRITY = '/api/v1/admin/quota/integrity';

describe('history, integrity and the ledger guards', () => {
  let t: TestApp;
  let admin: string;
  let operator: string;
  let service: string;

  beforeAll(async () => {
    t = await startTestApp({ env: { THROTTLE_LIMIT: '0' } });
    admin = (await loginAs(t, 'admin')).token;
    operator = (await loginAs(t, 'operator')).token;
    service = (await loginAs(t, 'service')).token;
  });
  afterAll(async () => {
    await t?.close();
  });

  const consume = (id: string, amount: number) =>
    request(t.server).post(`/api/v1/quota/members/${id}/consume`).set(bearer(service)).send({ amount }).expect(200);

  it("lists a member's history newest first, with every field", async () => {
    const member = await createMember(t, { maxQuota: 50 });
    await consume(member.id, 4);
    const res = await request(t.server).get(`${HISTORY}?member_id=${member.id}`).set(bearer(operator));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      data: [
        {
          id: expect.stringMatching(/^\d+$/),
          member_id: member.id,
          delta: -4,
          balance_after: 46,
          reason: 'consumption',
          actor: expect.stringMatching(/^\d+$/),
          operation_id: null,
          note: null,
          created_at: expect.stringMatching(ISO_MS),
        },
        {
          id: expect.stringMatching(/^\d+$/),
          member_id: member.id,
          delta: 50,
          balance_after: 50,
          reason: 'initial_grant',
          actor: 'system',
          operation_id: null,
          note: null,
          created_at: expect.stringMatching(ISO_MS),
        },
      ],
      meta: { limit: 50, next_cursor: null },
    });
  });

  it('pages with a cursor until next_cursor is null, without gaps or repeats', async () => {
    const member = await createMember(t, { maxQuota: 100 });
    for (let i = 1; i <= 6; i++) await consume(member.id, i);
    const ids = (await historyOf(t, member.id)).map((h) => h.id).reverse();
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await request(t.server)
        .get(`${HISTORY}?member_id=${member.id}&limit=3${cursor ? `&cursor=${cursor}` : ''}`)
        .set(bearer(admin))
        .expect(200);
      seen.push(...res.body.data.map((h: { id: string }) => h.id));
      cursor = res.body.meta.next_cursor as string | null;
      expect(res.body.meta.limit).toBe(3);
      pages++;
    } while (cursor);
    expect(seen).toEqual(ids);
    expect(pages).toBe(3);
  });

  it('filters by reason and by a from/to window', async () => {
    const member = await createMember(t, { maxQuota: 50 });
    await consume(member.id, 1);
    await sleep(20);
    const between = new Date();
    await sleep(20);
    await consume(member.id, 2);
    const consumptions = await request(t.server)
      .get(`${HISTORY}?member_id=${member.id}&reason=consumption`)
      .set(bearer(admin))
      .expect(200);
    expect(consumptions.body.data.map((h: { delta: number }) => h.delta)).toEqual([-2, -1]);
    const after = await request(t.server)
      .get(`${HISTORY}?member_id=${member.id}&from=${between.toISOString()}`)
      .set(bearer(admin))
      .expect(200);
    expect(after.body.data.map((h: { delta: number }) => h.delta)).toEqual([-2]);
    const before = await request(t.server)
      .get(`${HISTORY}?member_id=${member.id}&to=${between.toISOString()}`)
      .set(bearer(admin))
      .expect(200);
    expect(before.body.data.map((h: { delta: number }) => h.delta)).toEqual([-1, 50]);
    const grants = await request(t.server)
      .get(`${HISTORY}?reason=initial_grant&limit=500`)
      .set(bearer(admin))
      .expect(200);
    expect(grants.body.data.every((h: { reason: string }) => h.reason === 'initial_grant')).toBe(true);
  });

  it('refuses bad filters with 422 (limit over the cap, bad cursor, bad dates, unknown parameters)', async () => {
    const bad = [
      'limit=501',
      'limit=0',
      'limit=1.5',
      'limit=ten',
      'cursor=not-a-cursor',
      'cursor=%25%25',
      `cursor=${Buffer.from('h:abc').toString('base64url')}`,
      'from=yesterday',
      'to=2026-13-01T00:00:00Z',
      'from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z',
      'reason=gift',
      'member_id=-1',
      'member_id=abc',
      'sort=asc',
    ];
    for (const query of bad) {
      const res = await request(t.server).get(`${HISTORY}?${query}`).set(bearer(admin));
      expect({ query, status: res.status, code: res.body.code }).toEqual({
        query,
        status: 422,
        code: 'validation_failed',
      });
    }
  });

  it('integrity: a clean ledger, per member or all; unknown members are 404', async () => {
    const member = await createMember(t);
    await consume(member.id, 3);
    const all = await request(t.server).get(INTEGRITY).set(bearer(operator)).expect(200);
    const [count] = await sql<{ n: unknown }>(t, 'SELECT COUNT(*) AS n FROM members');
    expect(all.body).toEqual({ data: { checked: Number(count.n), mismatches: [], held_mismatches: [] } });
    const one = await request(t.server).get(`${INTEGRITY}?member_id=${member.id}`).set(bearer(admin)).expect(200);
    expect(one.body).toEqual({ data: { checked: 1, mismatches: [], held_mismatches: [] } });
    expectProblem(await request(t.server).get(`${INTEGRITY}?member_id=987654321`).set(bearer(admin)), 404, 'not_found');
    expectProblem(await request(t.server).get(`${INTEGRITY}?member=1`).set(bearer(admin)), 422, 'validation_failed');

    const report = await runQuotaVerify(t.app.get(DataSource));
    expect(report).toEqual({ checked: Number(count.n), mismatches: [], held_mismatches: [] });
    expect(formatQuotaVerify(report)).toMatch(/^ok: \d+ member\(s\) checked/);
  });

  it('integrity lists a member whose held units differ from its open holds, and quota:verify fails on it', async () => {
    const member = await createMember(t, { maxQuota: 50 });
    await sql(t, 'UPDATE members SET quota_held = 7 WHERE id = ?', [member.id]);
    try {
      const res = await request(t.server).get(`${INTEGRITY}?member_id=${member.id}`).set(bearer(admin)).expect(200);
      expect(res.body.data).toEqual({
        checked: 1,
        mismatches: [],
        held_mismatches: [{ member_id: member.id, held: 7, open_holds: 0 }],
      });
      const report = await runQuotaVerify(t.app.get(DataSource), member.id);
      expect(formatQuotaVerify(report)).toContain(`MISMATCH member ${member.id}: held 7, open holds 0`);
      expect(formatQuotaVerify(report)).toContain('FAILED: 1 member(s) hold other than their open holds');
    } finally {
      await sql(t, 'UPDATE members SET quota_held = 0 WHERE id = ?', [member.id]);
    }
  });

  it('integrity lists a member whose balance was changed behind the ledger, and quota:verify fails on it', async () => {
    const member = await createMember(t, { maxQuota: 50 });
    await sql(t, 'UPDATE members SET quota_balance = 999 WHERE id = ?', [member.id]);
    try {
      const res = await request(t.server).get(INTEGRITY).set(bearer(admin)).expect(200);
      expect(res.body.data.mismatches).toEqual([{ member_id: member.id, balance: 999, ledger_sum: 50 }]);
      const report = await runQuotaVerify(t.app.get(DataSource), member.id);
      expect(report).toEqual({
        checked: 1,
        mismatches: [{ member_id: member.id, balance: 999, ledger_sum: 50 }],
        held_mismatches: [],
      });
      expect(formatQuotaVerify(report)).toContain(`MISMATCH member ${member.id}: balance 999, ledger sum 50`);
    } finally {
      await sql(t, 'UPDATE members SET quota_balance = 50 WHERE id = ?', [member.id]);
    }
  });

  it('the database refuses any UPDATE or DELETE of a history row', async () => {
    const member = await createMember(t);
    const before = await quotaSnapshot(t);
    await expect(sql(t, 'UPDATE member_quota_history SET delta = 1 WHERE member_id = ?', [member.id])).rejects.toThrow(
      /append-only/,
    );
    await expect(sql(t, 'DELETE FROM member_quota_history WHERE member_id = ?', [member.id])).rejects.toThrow(
      /append-only/,
    );
    expect(await quotaSnapshot(t)).toEqual(before);
  });

  it('the quota ledger migration reverts and re-applies cleanly', async () => {
    const other = await startTestApp();
    try {
      const dataSource = other.app.get(DataSource);
      const runner = dataSource.createQueryRunner();
      try {
        const migration = new QuotaLedger1763900200000();
        await migration.down(runner);
        expect(await runner.hasTable('idempotency_keys')).toBe(false);
        await migration.up(runner);
        expect(await runner.hasTable('idempotency_keys')).toBe(true);
        const table = await runner.getTable('member_quota_history');
        expect(table?.indices.map((i) => i.name)).toContain('idx_member_quota_history_member_idempotency');
      } finally {
        await runner.release();
      }
      const member = await createMember(other);
      await expect(
        dataSource.query('DELETE FROM member_quota_history WHERE member_id = ?', [member.id]),
      ).rejects.toThrow(/append-only/);
    } finally {
      await other.close();
    }
  });
});
