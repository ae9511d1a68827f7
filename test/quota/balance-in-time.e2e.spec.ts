import request from 'supertest';
import { DataSource } from 'typeorm';
import { sqlTimestamp, readTimestamp, type SqlSession } from '../../src/database/sql-session';
import { QuotaDatabase } from '../../src/database/database';
import { BalancesInTimeRepository } from '../../src/quota/balances-in-time.repository';
import { bearer, loginAs } from '../support/auth';
import { createMember, quotaSnapshot, seedSpreadLedger, sql } from '../support/quota-factories';
import { SchedulerRegistry } from '@nestjs/schedule';
import { stopScheduled } from '../../src/common/periodic';
import { HOLD_EXPIRY_INTERVAL } from '../../src/quota/hold-expiry.service';
import { startTestApp, type TestApp } from '../support/test-app';
import { testDriver } from '../support/test-database';
import { expectProblem, sleep } from '../auth/helpers';

const BALANCE = (id: string) => `/api/v1/quota/members/${id}`;
const STATEMENT = (id: string) => `/api/v1/admin/quota/members/${id}/statement`;
const MINUTE = 60_000;
const DAY = 86_400_000;

interface Row {
  created_at: Date;
  balance_after: number;
  delta: number;
  reason: string;
}

interface StatementBody {
  member_id: string;
  from: string;
  to: string;
  opening_balance: number;
  closing_balance: number;
  held: number;
  totals: Record<string, { count: number; units: number }>;
}

const iso = (ms: number) => new Date(ms).toISOString();

describe('balances in time: a balance at an instant and a statement', () => {
  let t: TestApp;
  let admin: string;
  let operator: string;
  let service: string;

  beforeAll(async () => {
    t = await startTestApp({ env: { THROTTLE_LIMIT: '0' } });
    // Hold rows are written straight to the table here, some long past their expiry: the sweep
    // would give those back while the suite reads them.
    stopScheduled(t.app.get(SchedulerRegistry), HOLD_EXPIRY_INTERVAL);
    admin = (await loginAs(t, 'admin')).token;
    operator = (await loginAs(t, 'operator')).token;
    service = (await loginAs(t, 'service')).token;
  });
  afterAll(async () => {
    await t?.close();
  });

  const get = (path: string, token: string) => request(t.server).get(path).set(bearer(token));

  async function ledgerOf(memberId: string): Promise<Row[]> {
    const rows = await sql<{ created_at: unknown; balance_after: unknown; delta: unknown; reason: string }>(
      t,
      'SELECT created_at, balance_after, delta, reason FROM member_quota_history WHERE member_id = ? ORDER BY id',
      [memberId],
    );
    return rows.map((r) => ({
      created_at: readTimestamp(r.created_at),
      balance_after: Number(r.balance_after),
      delta: Number(r.delta),
      reason: r.reason,
    }));
  }

  /** A member with five ledger rows a few milliseconds apart: grant 50, consume 10, refund 3, adjust −20, consume 1. */
  async function memberWithHistory(): Promise<{ id: string; rows: Row[] }> {
    const member = await createMember(t, { maxQuota: 50 });
    const steps = [
      () =>
        request(t.server)
          .post(`${BALANCE(member.id)}/consume`)
          .set(bearer(service))
          .send({ amount: 10 }),
      () =>
        request(t.server)
          .post(`${BALANCE(member.id)}/refund`)
          .set(bearer(service))
          .send({ amount: 3 }),
      () =>
        request(t.server)
          .post(`/api/v1/admin/quota/members/${member.id}/adjust`)
          .set(bearer(admin))
          .send({ delta: -20 }),
      () =>
        request(t.server)
          .post(`${BALANCE(member.id)}/consume`)
          .set(bearer(service))
          .send({ amount: 1 }),
    ];
    for (const step of steps) {
      await sleep(8);
      expect((await step()).status).toBe(200);
    }
    const rows = await ledgerOf(member.id);
    expect(rows.map((r) => r.balance_after)).toEqual([50, 40, 43, 23, 22]);
    // Distinct instants, at least 2 ms apart, so "1 ms after a row" is still before the next.
    for (let i = 1; i < rows.length; i++) {
      expect(rows[i].created_at.getTime() - rows[i - 1].created_at.getTime()).toBeGreaterThanOrEqual(2);
    }
    return { id: member.id, rows };
  }

  it('answers the balance as it stood at each instant, with as_of, and headers that describe now', async () => {
    const { id, rows } = await memberWithHistory();
    for (const row of rows) {
      for (const at of [row.created_at.getTime(), row.created_at.getTime() + 1]) {
        const res = await get(`${BALANCE(id)}?at=${iso(at)}`, service);
        expect({ at: iso(at), status: res.status, balance: res.body.data?.balance }).toEqual({
          at: iso(at),
          status: 200,
          balance: row.balance_after,
        });
        expect(res.body.data).toEqual(
          expect.objectContaining({ member_id: id, as_of: iso(at), held: 0, max_quota: 50, is_active: true }),
        );
        expect(res.headers['x-quota-remaining']).toBe('22');
        expect(res.headers['x-quota-limit']).toBe('50');
      }
    }
    // Without `at`: as today, plus `held`, and no as_of.
    const now = await get(BALANCE(id), service);
    expect(now.status).toBe(200);
    expect(now.body.data).toEqual(expect.objectContaining({ balance: 22, held: 0 }));
    expect(now.body.data).not.toHaveProperty('as_of');
    // Another spelling of an instant is echoed as ISO-8601 UTC with milliseconds.
    const last = rows[rows.length - 1].created_at;
    const inParis = new Date(last.getTime() + 3_600_000).toISOString().replace('Z', '+01:00');
    const paris = await get(`${BALANCE(id)}?at=${encodeURIComponent(inParis)}`, admin);
    expect(paris.status).toBe(200);
    expect(paris.body.data).toEqual(expect.objectContaining({ balance: 22, as_of: last.toISOString() }));
  });

  it('refuses a future instant (422), one before the first ledger row (404) and a malformed one', async () => {
    const { id, rows } = await memberWithHistory();
    const future = await get(`${BALANCE(id)}?at=${iso(Date.now() + MINUTE)}`, service);
    expectProblem(future, 422, 'validation_failed');
    expect(future.body.errors).toEqual([{ field: 'at', message: expect.stringContaining('future') }]);

    const before = await get(`${BALANCE(id)}?at=${iso(rows[0].created_at.getTime() - 1)}`, service);
    expectProblem(before, 404, 'not_found');

    for (const bad of ['yesterday', '2026-13-01T00:00:00Z', '2026-12-06 10:00:00', '']) {
      const res = await get(`${BALANCE(id)}?at=${encodeURIComponent(bad)}`, service);
      expectProblem(res, 422, 'validation_failed');
      expect(res.body.errors.map((e: { field: string }) => e.field)).toEqual(['at']);
    }
    const twice = await get(`${BALANCE(id)}?at=${iso(Date.now())}&at=${iso(Date.now())}`, service);
    expectProblem(twice, 422, 'validation_failed');
    const unknown = await get(`${BALANCE(id)}?at=${iso(Date.now())}&verbose=1`, service);
    expectProblem(unknown, 422, 'validation_failed');
    expect(unknown.body.errors.map((e: { field: string }) => e.field)).toEqual(['verbose']);
    expectProblem(await get(`${BALANCE('987654321')}?at=${iso(Date.now())}`, service), 404, 'not_found');
  });

  it("lets a member token read its own past balance only; another member's is 404", async () => {
    const own = await memberWithHistory();
    const other = await memberWithHistory();
    const member = (await loginAs(t, 'member', { memberId: own.id })).token;
    const at = iso(own.rows[1].created_at.getTime());
    const res = await get(`${BALANCE(own.id)}?at=${at}`, member);
    expect(res.status).toBe(200);
    expect(res.body.data).toEqual(expect.objectContaining({ balance: 40, as_of: at }));
    expectProblem(await get(`${BALANCE(other.id)}?at=${at}`, member), 404, 'not_found');
    // Before the member's first row the answer is the same 404 as for another member's id.
    expectProblem(await get(`${BALANCE(own.id)}?at=${iso(Date.now() - DAY)}`, member), 404, 'not_found');
  });

  it('gives a statement: totals per reason, opening and closing balances, and the identity between them', async () => {
    const { id, rows } = await memberWithHistory();
    const [grant, consumed, refunded, adjusted, consumedAgain] = rows;
    const all = await get(STATEMENT(id), operator);
    expect(all.status).toBe(200);
    expect(all.body).toEqual({
      data: {
        member_id: id,
        from: expect.any(String),
        to: expect.any(String),
        opening_balance: 0,
        closing_balance: 22,
        held: 0,
        totals: {
          initial_grant: { count: 1, units: 50 },
          consumption: { count: 2, units: -11 },
          refund: { count: 1, units: 3 },
          manual_adjustment: { count: 1, units: -20 },
        },
      },
    });

    const window = await get(
      `${STATEMENT(id)}?from=${iso(consumed.created_at.getTime())}&to=${iso(adjusted.created_at.getTime())}`,
      admin,
    );
    expect(window.status).toBe(200);
    expect(window.body.data).toEqual(
      expect.objectContaining({
        from: consumed.created_at.toISOString(),
        to: adjusted.created_at.toISOString(),
        opening_balance: 50,
        closing_balance: 23,
        totals: {
          consumption: { count: 1, units: -10 },
          refund: { count: 1, units: 3 },
          manual_adjustment: { count: 1, units: -20 },
        },
      }),
    );

    // Every window between instants around the rows: closing = opening + Σ units, exactly, and both
    // ends agree with the balance at an instant.
    const instants = rows.flatMap((r) => [
      r.created_at.getTime() - 1,
      r.created_at.getTime(),
      r.created_at.getTime() + 1,
    ]);
    for (const from of instants) {
      for (const to of instants.filter((x) => x >= from)) {
        const res = await get(`${STATEMENT(id)}?from=${iso(from)}&to=${iso(to)}`, operator);
        expect(res.status).toBe(200);
        const body = res.body.data as StatementBody;
        const units = Object.values(body.totals).reduce((sum, total) => sum + total.units, 0);
        const count = Object.values(body.totals).reduce((sum, total) => sum + total.count, 0);
        expect({ from: iso(from), to: iso(to), closing: body.opening_balance + units }).toEqual({
          from: iso(from),
          to: iso(to),
          closing: body.closing_balance,
        });
        const inWindow = rows.filter((r) => r.created_at.getTime() >= from && r.created_at.getTime() <= to);
        expect(count).toBe(inWindow.length);
        const lastBefore = rows.filter((r) => r.created_at.getTime() < from).pop();
        const lastAtTo = rows.filter((r) => r.created_at.getTime() <= to).pop();
        expect(body.opening_balance).toBe(lastBefore?.balance_after ?? 0);
        expect(body.closing_balance).toBe(lastAtTo?.balance_after ?? 0);
      }
    }
    expect(consumedAgain.balance_after).toBe(22);
    expect(grant.reason).toBe('initial_grant');
    expect(refunded.reason).toBe('refund');
  });

  it('breaks ties on created_at by id: the last row written at that instant', async () => {
    const member = await createMember(t, { maxQuota: 50 });
    await sleep(5);
    const instant = new Date();
    for (const [delta, after] of [
      [-1, 49],
      [-2, 47],
    ]) {
      await sql(
        t,
        `INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor, created_at)
         VALUES (?, ?, ?, 'consumption', 'test', ?)`,
        [member.id, delta, after, sqlTimestamp(instant)],
      );
    }
    await sql(t, 'UPDATE members SET quota_balance = 47 WHERE id = ?', [member.id]);
    const at = await get(`${BALANCE(member.id)}?at=${instant.toISOString()}`, service);
    expect(at.body.data).toEqual(expect.objectContaining({ balance: 47, as_of: instant.toISOString() }));
    const statement = await get(
      `${STATEMENT(member.id)}?from=${instant.toISOString()}&to=${instant.toISOString()}`,
      admin,
    );
    expect(statement.body.data).toEqual(
      expect.objectContaining({
        opening_balance: 50,
        closing_balance: 47,
        totals: { consumption: { count: 2, units: -3 } },
      }),
    );
  });

  it("defaults to the member's creation until now, and refuses from > to, a future end and bad instants", async () => {
    const { id } = await memberWithHistory();
    const [member] = await sql<{ created_at: unknown }>(t, 'SELECT created_at FROM members WHERE id = ?', [id]);
    const before = Date.now();
    const res = await get(STATEMENT(id), admin);
    const after = Date.now();
    expect(res.status).toBe(200);
    expect(res.body.data.from).toBe(readTimestamp(member.created_at).toISOString());
    expect(new Date(res.body.data.to as string).getTime()).toBeGreaterThanOrEqual(before);
    expect(new Date(res.body.data.to as string).getTime()).toBeLessThanOrEqual(after);
    // Only `to`: from the creation; only `from`: until now.
    const onlyFrom = await get(`${STATEMENT(id)}?from=${iso(before - DAY)}`, admin);
    expect(onlyFrom.status).toBe(200);
    expect(onlyFrom.body.data).toEqual(expect.objectContaining({ from: iso(before - DAY), closing_balance: 22 }));
    // A window wholly before the member: nothing in it, and an end before the creation is allowed.
    const early = await get(`${STATEMENT(id)}?from=${iso(before - 2 * DAY)}&to=${iso(before - DAY)}`, admin);
    expect(early.body.data).toEqual(
      expect.objectContaining({ opening_balance: 0, closing_balance: 0, held: 0, totals: {} }),
    );
    const onlyTo = await get(`${STATEMENT(id)}?to=${iso(before - DAY)}`, admin);
    expect(onlyTo.status).toBe(200);
    expect(onlyTo.body.data).toEqual(expect.objectContaining({ from: iso(before - DAY), to: iso(before - DAY) }));

    const refusals: Array<[string, string]> = [
      [`from=${iso(before)}&to=${iso(before - 1)}`, 'from'],
      [`to=${iso(Date.now() + MINUTE)}`, 'to'],
      [`from=${iso(Date.now() + MINUTE)}`, 'from'],
      ['from=yesterday', 'from'],
      ['to=2026-02-30T00:00:00Z', 'to'],
      ['limit=5', 'limit'],
    ];
    for (const [query, field] of refusals) {
      const refused = await get(`${STATEMENT(id)}?${query}`, admin);
      expectProblem(refused, 422, 'validation_failed');
      expect({ query, fields: refused.body.errors.map((e: { field: string }) => e.field) }).toEqual({
        query,
        fields: [field],
      });
    }
    expectProblem(await get(STATEMENT('987654321'), admin), 404, 'not_found');
    expectProblem(await get(STATEMENT('12abc'), admin), 404, 'not_found');
  });

  it('is for admins and operators only', async () => {
    const { id } = await memberWithHistory();
    const member = (await loginAs(t, 'member', { memberId: id })).token;
    expect((await get(STATEMENT(id), admin)).status).toBe(200);
    expect((await get(STATEMENT(id), operator)).status).toBe(200);
    expectProblem(await get(STATEMENT(id), service), 403, 'forbidden');
    expectProblem(await get(STATEMENT(id), member), 403, 'forbidden');
    expect((await request(t.server).get(STATEMENT(id))).status).toBe(401);
  });

  it('counts the units of holds open at the instant: made by then and not yet settled', async () => {
    const { id } = await memberWithHistory();
    const { id: otherId } = await memberWithHistory();
    const now = Date.now();
    const hold = (memberId: string, amount: number, status: string, createdAt: number, settledAt: number | null) =>
      sql(
        t,
        `INSERT INTO quota_holds (member_id, amount, status, created_by, created_at, expires_at, settled_at)
         VALUES (?, ?, ?, 'test', ?, ?, ?)`,
        [
          memberId,
          amount,
          status,
          sqlTimestamp(new Date(createdAt)),
          sqlTimestamp(new Date(createdAt + 300_000)),
          settledAt === null ? null : sqlTimestamp(new Date(settledAt)),
        ],
      );
    await hold(id, 5, 'committed', now - 10 * MINUTE, now - 5 * MINUTE);
    await hold(id, 7, 'held', now - 3 * MINUTE, null);
    // The sweep stopped for nine days: a hold still `held` long past its expiry is still open.
    await hold(id, 11, 'held', now - 9 * DAY, null);
    await hold(id, 13, 'expired', now - 9 * DAY, now - 9 * DAY + 300_000);
    await hold(otherId, 100, 'held', now - 3 * MINUTE, null);
    await sql(t, 'UPDATE members SET quota_held = ? WHERE id = ?', [18, id]);

    const heldAt = async (at: number) => {
      const res = await get(`${STATEMENT(id)}?from=${iso(at)}&to=${iso(at)}`, admin);
      expect(res.status).toBe(200);
      return (res.body.data as StatementBody).held;
    };
    expect(await heldAt(now - 9 * DAY - 1)).toBe(0);
    expect(await heldAt(now - 9 * DAY)).toBe(24);
    expect(await heldAt(now - 9 * DAY + 299_999)).toBe(24);
    expect(await heldAt(now - 9 * DAY + 300_000)).toBe(11);
    expect(await heldAt(now - 7 * MINUTE)).toBe(16);
    expect(await heldAt(now - 5 * MINUTE)).toBe(11);
    expect(await heldAt(now - 2 * MINUTE)).toBe(18);
    expect((await get(STATEMENT(id), admin)).body.data.held).toBe(18);

    const current = await get(BALANCE(id), service);
    expect(current.body.data).toEqual(expect.objectContaining({ balance: 22, held: 18 }));
    const past = await get(`${BALANCE(id)}?at=${iso(Date.now() - 1)}`, service);
    expect(past.body.data).toEqual(expect.objectContaining({ balance: 22, held: 18 }));
  });

  it('writes nothing', async () => {
    const { id, rows } = await memberWithHistory();
    const before = await quotaSnapshot(t);
    const holdsBefore = await sql(t, 'SELECT * FROM quota_holds ORDER BY id');
    await get(`${BALANCE(id)}?at=${iso(rows[2].created_at.getTime())}`, service).expect(200);
    await get(`${BALANCE(id)}?at=${iso(Date.now() + MINUTE)}`, service).expect(422);
    await get(STATEMENT(id), admin).expect(200);
    await get(`${STATEMENT(id)}?from=${iso(Date.now())}&to=${iso(Date.now() - 1000)}`, admin).expect(422);
    expect(await quotaSnapshot(t)).toEqual(before);
    expect(await sql(t, 'SELECT * FROM quota_holds ORDER BY id')).toEqual(holdsBefore);
  });

  (testDriver === 'mysql' ? describe : describe.skip)('on MariaDB, from the indexes', () => {
    const HISTORY_INDEX = 'idx_member_quota_history_member_time';
    let memberId: string;

    /** The statements the repository sends, captured from a session that answers nothing. */
    async function statementsOf(work: (repo: BalancesInTimeRepository, s: SqlSession) => Promise<unknown>) {
      const database = t.app.get(QuotaDatabase);
      const captured: Array<{ sql: string; params: readonly unknown[] }> = [];
      const session = {
        sql: database.sql,
        rows: (sql: string, params: readonly unknown[] = []) => {
          captured.push({ sql, params });
          return Promise.resolve([{ balance: 0, held: 0 }]);
        },
      } as unknown as SqlSession;
      await work(t.app.get(BalancesInTimeRepository), session);
      return captured;
    }

    beforeAll(async () => {
      // 40 members with 2,000 ledger rows each, spread over 20 days, so the planner sees a real table.
      const ds = t.app.get(DataSource);
      const member = await createMember(t, { maxQuota: 50 });
      memberId = member.id;
      await seedSpreadLedger(t, memberId, { prefix: 'explain', copies: 39, rows: 2000, secondsApart: 864 });
      await ds.query(
        `INSERT INTO quota_holds (member_id, amount, status, created_by, created_at, expires_at, settled_at)
         SELECT m.id, 1, 'committed', 'test', TIMESTAMPADD(SECOND, -s.seq * 3456, NOW(3)),
                TIMESTAMPADD(SECOND, -s.seq * 3456 + 300, NOW(3)), TIMESTAMPADD(SECOND, -s.seq * 3456 + 10, NOW(3))
           FROM seq_1_to_500 s, members m WHERE m.id = ? OR m.external_id LIKE 'explain-%'`,
        [memberId],
      );
      await ds.query('ANALYZE TABLE member_quota_history, quota_holds');
    });

    const explain = async (statement: { sql: string; params: readonly unknown[] }) =>
      t.app.get(DataSource).query<
        Array<{
          table: string | null;
          type: string | null;
          key: string | null;
          Extra: string | null;
          r_rows: unknown;
        }>
      >(`ANALYZE ${statement.sql}`, [...statement.params]);

    const expectIndexed = (plan: Awaited<ReturnType<typeof explain>>) => {
      for (const step of plan) {
        if (step.table === null || step.table.startsWith('<')) continue;
        const expected =
          step.table === 'member_quota_history'
            ? [HISTORY_INDEX]
            : step.table === 'quota_holds'
              ? ['idx_quota_holds_member', 'idx_quota_holds_status_expires']
              : [];
        expect({ table: step.table, key: expected.includes(step.key ?? '') }).toEqual({ table: step.table, key: true });
        expect({ table: step.table, type: step.type }).toEqual({
          table: step.table,
          type: expect.stringMatching(/^(range|ref)/),
        });
        expect({ table: step.table, extra: step.Extra ?? '' }).toEqual({
          table: step.table,
          extra: expect.not.stringMatching(/filesort/),
        });
      }
    };

    it('a balance at an instant is one dive into the time index', async () => {
      const [statement] = await statementsOf((repo, s) => repo.balanceAt(s, memberId, new Date(Date.now() - 10 * DAY)));
      const plan = await explain(statement);
      expectIndexed(plan);
      const history = plan.filter((step) => step.table === 'member_quota_history');
      expect(history).toHaveLength(1);
      expect(Number(history[0].r_rows)).toBeLessThanOrEqual(1);
    });

    it("a statement's opening and closing balances are one dive each into the time index", async () => {
      const [statement] = await statementsOf((repo, s) =>
        repo.windowBalances(s, memberId, new Date(Date.now() - 5 * DAY), new Date(Date.now() - DAY)),
      );
      const plan = await explain(statement);
      expectIndexed(plan);
      const history = plan.filter((step) => step.table === 'member_quota_history');
      expect(history.map((step) => Number(step.r_rows))).toEqual([1, 1]);
    });
  });
});
