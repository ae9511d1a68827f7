import { createConnection } from 'mysql2/promise';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { QuotaDatabase } from '../../src/database/database';
import { readTimestamp, sqlTimestamp, type SqlSession } from '../../src/database/sql-session';
import { bearer, loginAs } from '../support/auth';
import { createMember, seedSpreadLedger, sql } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';
import { mysqlServer, testDriver } from '../support/test-database';
import { ANALYTICS_TEST_ENV, consume, insertHistory, processTail, type SyntheticRow } from './helpers';

const STATEMENT = (id: string) => `/api/v1/admin/quota/members/${id}/statement`;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const dayFloor = (ms: number) => Math.floor(ms / DAY) * DAY;
const iso = (ms: number) => new Date(ms).toISOString();

interface StatementBody {
  from: string;
  to: string;
  opening_balance: number;
  closing_balance: number;
  totals: Record<string, { count: number; units: number }>;
}

/** A small deterministic generator, so a failing window can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1_664_525 + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

/**
 * Statement totals from the daily rollups: every window must give what a GROUP BY over the ledger
 * gives, whether its rows are folded, not folded yet, or found late in a gap.
 */
describe("statements from the members' daily rollups", () => {
  let t: TestApp;
  let admin: string;
  let service: string;
  let memberId: string;
  /** The synthetic history's first instant: 40 days ago, on a whole hour. */
  let startMs: number;
  /** Instants inside the synthetic history where a balance-neutral pair of rows can be written. */
  const pairAt: number[] = [];

  beforeAll(async () => {
    t = await startTestApp({ env: ANALYTICS_TEST_ENV });
    admin = (await loginAs(t, 'admin')).token;
    service = (await loginAs(t, 'service')).token;

    // A member whose ledger runs over 40 days: synthetic rows in time order with a running balance
    // that comes back to 0 before the member's own initial grant (written now), so the balance
    // chain is whole and `closing = opening + Σ units` holds for every window.
    const member = await createMember(t, { maxQuota: 50 });
    memberId = member.id;
    startMs = dayFloor(Date.now()) - 40 * DAY + 7 * HOUR;
    const next = random(7);
    const reasons = ['consumption', 'consumption', 'refund', 'manual_adjustment', 'hold', 'hold_release'];
    const rows: SyntheticRow[] = [];
    let balance = 0;
    const add = (at: number, reason: string, delta: number) => {
      balance += delta;
      rows.push({ memberId, delta, balanceAfter: balance, reason, at: new Date(at) });
    };
    add(startMs, 'initial_grant', 40);
    let at = startMs;
    for (let i = 0; i < 240; i++) {
      // About 6 rows a day, some exactly on midnight and on its last millisecond.
      at += Math.floor(next() * 4 * HOUR) + 1;
      if (i % 17 === 0) at = dayFloor(at) + DAY;
      if (i % 23 === 0) at = dayFloor(at) + DAY - 1;
      const reason = reasons[Math.floor(next() * reasons.length)];
      const delta =
        reason === 'refund' || reason === 'hold_release' ? 1 + Math.floor(next() * 5) : -Math.floor(next() * 4);
      add(at, reason, Math.max(delta, -balance));
      if (i % 30 === 10) pairAt.push(at + 1);
    }
    add(at + 2, 'manual_adjustment', -balance);
    expect(at + 2).toBeLessThan(Date.now() - 2 * DAY);
    await insertHistory(t, rows);
  });
  afterAll(async () => {
    await t?.close();
  });

  const get = (path: string) => request(t.server).get(path).set(bearer(admin));

  async function ledgerTotals(fromMs: number, toMs: number): Promise<Record<string, { count: number; units: number }>> {
    const rows = await sql<{ reason: string; n: unknown; units: unknown }>(
      t,
      `SELECT reason, COUNT(*) AS n, SUM(delta) AS units FROM member_quota_history
        WHERE member_id = ? AND created_at >= ? AND created_at <= ? GROUP BY reason`,
      [memberId, sqlTimestamp(new Date(fromMs)), sqlTimestamp(new Date(toMs))],
    );
    return Object.fromEntries(
      rows
        .map((r) => [r.reason, { count: Number(r.n), units: Number(r.units) }] as const)
        .sort(([a], [b]) => (a < b ? -1 : 1)),
    );
  }

  async function statement(fromMs: number, toMs: number): Promise<StatementBody> {
    const res = await get(`${STATEMENT(memberId)}?from=${iso(fromMs)}&to=${iso(toMs)}`).expect(200);
    return res.body.data as StatementBody;
  }

  /** Windows of every shape: whole days, partial days, one day, an instant, midnight edges, the whole history. */
  function windows(seed: number, nowMs: number): Array<[number, number]> {
    const next = random(seed);
    const days = (d: number) => dayFloor(startMs) + d * DAY;
    const list: Array<[number, number]> = [
      [startMs - DAY, nowMs],
      [days(1), days(11) - 1],
      [days(1), days(11)],
      [days(1) + 1, days(11) - 2],
      [days(5), days(6) - 1],
      [days(5) + HOUR, days(5) + 20 * HOUR],
      [days(5) - 1, days(6)],
      [days(39), nowMs],
      [dayFloor(nowMs), nowMs],
      [days(3) + 5 * HOUR, days(3) + 5 * HOUR],
    ];
    for (let i = 0; i < 40; i++) {
      const a = startMs - DAY + Math.floor(next() * (nowMs - startMs + DAY));
      const b = startMs - DAY + Math.floor(next() * (nowMs - startMs + DAY));
      list.push([Math.min(a, b), Math.max(a, b)]);
    }
    return list;
  }

  /** Every window's totals equal the ledger's GROUP BY, and the balances agree with them. */
  async function expectExact(seed: number): Promise<void> {
    const nowMs = Date.now() - 1;
    for (const [fromMs, toMs] of windows(seed, nowMs)) {
      const body = await statement(fromMs, toMs);
      const expected = await ledgerTotals(fromMs, toMs);
      expect({ window: [iso(fromMs), iso(toMs)], totals: body.totals }).toEqual({
        window: [iso(fromMs), iso(toMs)],
        totals: expected,
      });
      const units = Object.values(body.totals).reduce((n, r) => n + r.units, 0);
      expect({ window: [iso(fromMs), iso(toMs)], closing: body.closing_balance }).toEqual({
        window: [iso(fromMs), iso(toMs)],
        closing: body.opening_balance + units,
      });
    }
  }

  const watermark = async () =>
    Number(
      (
        await sql<{ id: unknown }>(
          t,
          "SELECT last_history_id AS id FROM quota_analytics_state WHERE name = 'history_tail'",
        )
      )[0].id,
    );
  const maxId = async () =>
    Number((await sql<{ id: unknown }>(t, 'SELECT MAX(id) AS id FROM member_quota_history'))[0].id);

  /** Two rows at one instant that leave the balance as it was: a hold and its release. */
  async function pair(atMs: number, firstId?: number): Promise<void> {
    const before = await sql<{ balance_after: unknown }>(
      t,
      `SELECT balance_after FROM member_quota_history WHERE member_id = ? AND created_at <= ?
        ORDER BY created_at DESC, id DESC LIMIT 1`,
      [memberId, sqlTimestamp(new Date(atMs))],
    );
    const b = Number(before[0]?.balance_after ?? 0);
    const amount = Math.min(b, 2);
    const insert = (id: number | undefined, delta: number, after: number, reason: string) =>
      id === undefined
        ? sql(
            t,
            "INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor, created_at) VALUES (?, ?, ?, ?, 'system', ?)",
            [memberId, delta, after, reason, sqlTimestamp(new Date(atMs))],
          )
        : sql(
            t,
            "INSERT INTO member_quota_history (id, member_id, delta, balance_after, reason, actor, created_at) VALUES (?, ?, ?, ?, ?, 'system', ?)",
            [id, memberId, delta, after, reason, sqlTimestamp(new Date(atMs))],
          );
    await insert(firstId, -amount, b - amount, 'hold');
    await insert(firstId === undefined ? undefined : firstId + 1, amount, b, 'hold_release');
  }

  it('folds every row into its day, exactly as the ledger groups them', async () => {
    await processTail(t);
    expect(await watermark()).toBe(await maxId());
    const daily = await sql<{ day_start: unknown; reason: string; row_count: unknown; units: unknown }>(
      t,
      'SELECT day_start, reason, row_count, units FROM quota_member_daily WHERE member_id = ? ORDER BY day_start, reason',
      [memberId],
    );
    const ledger = await sql<{ created_at: unknown; reason: string; delta: unknown }>(
      t,
      'SELECT created_at, reason, delta FROM member_quota_history WHERE member_id = ?',
      [memberId],
    );
    const expected = new Map<string, [string, string, number, number]>();
    for (const r of ledger) {
      const day = iso(dayFloor(readTimestamp(r.created_at).getTime()));
      const key = `${day}|${r.reason}`;
      const cell = expected.get(key) ?? [day, r.reason, 0, 0];
      cell[2] += 1;
      cell[3] += Number(r.delta);
      expected.set(key, cell);
    }
    expect(
      daily.map((d) => [iso(readTimestamp(d.day_start).getTime()), d.reason, Number(d.row_count), Number(d.units)]),
    ).toEqual([...expected.values()].sort((a, b) => (`${a[0]}|${a[1]}` < `${b[0]}|${b[1]}` ? -1 : 1)));
    expect(daily.length).toBeGreaterThan(60);
  });

  it('totals every window exactly with all rows folded', async () => {
    await expectExact(11);
  });

  it('reads whole days from the rollups and the partial days from the ledger', async () => {
    const day = dayFloor(startMs) + 5 * DAY;
    const [cell] = await sql<{ reason: string }>(
      t,
      'SELECT reason FROM quota_member_daily WHERE member_id = ? AND day_start = ? ORDER BY reason LIMIT 1',
      [memberId, sqlTimestamp(new Date(day))],
    );
    const whole = await statement(day, day + DAY - 1);
    const partial = await statement(day, day + DAY - 2);
    await sql(
      t,
      'UPDATE quota_member_daily SET units = units + 1000 WHERE member_id = ? AND day_start = ? AND reason = ?',
      [memberId, sqlTimestamp(new Date(day)), cell.reason],
    );
    try {
      // The whole day is the rollup's (which now says 1,000 more); one millisecond short, the ledger's.
      expect((await statement(day, day + DAY - 1)).totals[cell.reason].units).toBe(
        whole.totals[cell.reason].units + 1000,
      );
      expect((await statement(day, day + DAY - 2)).totals).toEqual(partial.totals);
    } finally {
      await sql(
        t,
        'UPDATE quota_member_daily SET units = units - 1000 WHERE member_id = ? AND day_start = ? AND reason = ?',
        [memberId, sqlTimestamp(new Date(day)), cell.reason],
      );
    }
  });

  it('counts rows not folded yet: after the watermark, on old days and today', async () => {
    for (const at of pairAt.slice(0, 4)) await pair(at);
    await consume(t, service, memberId, 3);
    await consume(t, service, memberId, 4);
    expect(await watermark()).toBeLessThan(await maxId());
    await expectExact(12);

    // Folded now: the same answers, nothing counted twice.
    await processTail(t);
    expect(await watermark()).toBe(await maxId());
    await expectExact(13);
  });

  it('counts a late row in an open gap once, before and after the processor finds it', async () => {
    const base = await maxId();
    // Rows at base+5 and base+6 first: the watermark passes base+1..base+4, an open gap.
    await pair(pairAt[4], base + 5);
    await processTail(t);
    const gaps = await sql<{ from_id: unknown; to_id: unknown }>(t, 'SELECT from_id, to_id FROM quota_analytics_gaps');
    expect(gaps.map((g) => [Number(g.from_id), Number(g.to_id)])).toContainEqual([base + 1, base + 4]);
    // The transaction that held base+2 and base+3 commits: below the watermark, not folded yet.
    await pair(pairAt[5], base + 2);
    expect(await watermark()).toBe(base + 6);
    await expectExact(14);

    await processTail(t);
    const left = await sql<{ from_id: unknown; to_id: unknown }>(t, 'SELECT from_id, to_id FROM quota_analytics_gaps');
    expect(left.map((g) => [Number(g.from_id), Number(g.to_id)])).not.toContainEqual([base + 1, base + 4]);
    await expectExact(15);
  });

  it('answers the default window (the member since its creation) with the identity', async () => {
    await consume(t, service, memberId, 1);
    const res = await get(STATEMENT(memberId)).expect(200);
    const body = res.body.data as StatementBody;
    const units = Object.values(body.totals).reduce((n, r) => n + r.units, 0);
    expect(body.closing_balance).toBe(body.opening_balance + units);
    expect(body.totals).toEqual(await ledgerTotals(Date.parse(body.from), Date.parse(body.to)));
  });

  (testDriver === 'mysql' ? it : it.skip)(
    'on MariaDB, counts rows of a transaction that commits after the watermark passed their ids',
    async () => {
      await processTail(t);
      const at = pairAt[6];
      const [before] = await sql<{ balance_after: unknown }>(
        t,
        `SELECT balance_after FROM member_quota_history WHERE member_id = ? AND created_at <= ?
          ORDER BY created_at DESC, id DESC LIMIT 1`,
        [memberId, sqlTimestamp(new Date(at))],
      );
      const b = Number(before.balance_after);
      const amount = Math.min(b, 2);
      // A hold and its release on an old day, written by a transaction left open.
      const other = await createConnection({ ...mysqlServer, database: t.database.env.DB_DATABASE });
      try {
        await other.query('START TRANSACTION');
        await other.query(
          `INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor, created_at)
           VALUES (?, ?, ?, 'hold', 'system', ?), (?, ?, ?, 'hold_release', 'system', ?)`,
          [memberId, -amount, b - amount, sqlTimestamp(new Date(at)), memberId, amount, b, sqlTimestamp(new Date(at))],
        );
        // Another member's row commits with a higher id; the tail passes the open ids.
        const bystander = await createMember(t, { maxQuota: 50 });
        await consume(t, service, bystander.id, 3);
        await processTail(t);
        const gaps = await sql<{ n: unknown }>(t, 'SELECT COUNT(*) AS n FROM quota_analytics_gaps');
        expect(Number(gaps[0].n)).toBeGreaterThan(0);
        await expectExact(21);
        await other.query('COMMIT');
      } finally {
        await other.end();
      }
      // Committed, below the watermark, not folded yet: counted from the ledger through the gap.
      await expectExact(22);
      const runs = await processTail(t);
      expect(runs).toBeGreaterThanOrEqual(2);
      await expectExact(23);
    },
  );

  (testDriver === 'mysql' ? describe : describe.skip)('on MariaDB, from the rollups', () => {
    let bigId: string;
    const DAYS = 400;
    const PER_DAY = 40;

    beforeAll(async () => {
      // A member with 16,000 rows over 400 days (and 4 others like it), all folded.
      const ds = t.app.get(DataSource);
      const member = await createMember(t, { maxQuota: 50 });
      bigId = member.id;
      await seedSpreadLedger(t, bigId, {
        prefix: 'daily-explain',
        copies: 4,
        rows: DAYS * PER_DAY,
        secondsApart: 86_400 / PER_DAY,
      });
      await processTail(t);
      await ds.query('ANALYZE TABLE member_quota_history, quota_member_daily');
    }, 120_000);

    it('a year-long window reads rollup rows and at most the two edge days of the ledger', async () => {
      const db = t.app.get(QuotaDatabase);
      const captured: Array<{ sql: string; params: readonly unknown[] }> = [];
      const transaction = db.transaction.bind(db);
      const spy = jest.spyOn(db, 'transaction').mockImplementation((work, options) =>
        transaction((s: SqlSession) => {
          const capturing = new Proxy(s, {
            get(target, prop, receiver) {
              if (prop === 'rows') {
                return (query: string, params: readonly unknown[] = []) => {
                  captured.push({ sql: query, params });
                  return target.rows(query, params);
                };
              }
              const value: unknown = Reflect.get(target, prop, receiver);
              return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
            },
          });
          return work(capturing);
        }, options),
      );
      const toMs = Date.now() - 2 * HOUR;
      try {
        const res = await request(t.server)
          .get(`${STATEMENT(bigId)}?from=${iso(toMs - 365 * DAY)}&to=${iso(toMs)}`)
          .set(bearer(admin))
          .expect(200);
        const units = Object.values(res.body.data.totals as Record<string, { units: number; count: number }>);
        expect(units.reduce((n, r) => n + r.count, 0)).toBeGreaterThan(365 * PER_DAY - 2 * PER_DAY);
      } finally {
        spy.mockRestore();
      }

      let ledgerRows = 0;
      let rollupRows = 0;
      const ds = t.app.get(DataSource);
      for (const statement of captured) {
        if (!/member_quota_history|quota_member_daily/.test(statement.sql)) continue;
        const plan = await ds.query<
          Array<{ table: string | null; type: string | null; key: string | null; r_rows: unknown }>
        >(`ANALYZE ${statement.sql}`, [...statement.params]);
        for (const step of plan) {
          expect({ table: step.table, type: step.type }).not.toEqual({ table: step.table, type: 'ALL' });
          expect({ table: step.table, type: step.type }).not.toEqual({ table: step.table, type: 'index' });
          if (step.table === 'member_quota_history') ledgerRows += Number(step.r_rows ?? 0);
          if (step.table === 'quota_member_daily') rollupRows += Number(step.r_rows ?? 0);
        }
      }
      // 366 days × 4 reasons of rollups; the two edge days (≤ 2 × 40 rows) and the balance dives
      // from the ledger: not the 14,600 rows of the window.
      expect(rollupRows).toBeGreaterThan(300);
      expect(rollupRows).toBeLessThanOrEqual(366 * 4);
      expect(ledgerRows).toBeLessThanOrEqual(2 * PER_DAY + 10);
    });
  });
});
