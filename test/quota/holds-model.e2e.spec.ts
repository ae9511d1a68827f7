import { SchedulerRegistry } from '@nestjs/schedule';
import request, { type Response } from 'supertest';
import { stopScheduled } from '../../src/common/periodic';
import { JobsClock } from '../../src/jobs/clock';
import { ResetScheduler } from '../../src/jobs/reset-scheduler.service';
import { HOLD_EXPIRY_INTERVAL, HoldExpiryService } from '../../src/quota/hold-expiry.service';
import { waitForOperation } from '../jobs/helpers';
import { bearer, loginAs } from '../support/auth';
import { createConfig, createMember, ledgerReport, sql } from '../support/quota-factories';
import { seededRandom } from '../support/seeded-random';
import { startTestApp, type TestApp } from '../support/test-app';

/**
 * A seeded random sequence over HTTP that mixes holds (made, committed in full, in part or not at
 * all, released, settled twice, settled after their expiry, expired by the sweep) with consume,
 * refund, admin adjustments, idempotent repeats, membership and config changes and periodic
 * resets, checked step by step against a reference model; every CHECK_EVERY steps and at the end
 * the stored state (members, quota_holds, the ledger rows of every hold) and the hold listings are
 * compared with the model too.
 *
 * Balances are sometimes set near 2^31-1, where a hold's units cannot always come back (the
 * settlement is refused, the sweep leaves that hold open and goes on with the others) and open
 * holds may not keep more than 2^31-1 units.
 *
 * Expiry is deterministic: the timer sweep is stopped and the test runs HoldExpiryService.sweep
 * itself, with the real time or a time ahead of it. Holds of ttl 1 s really lapse; the model
 * settles or reads them only once their expires_at has passed, and the listings are compared only
 * when no such hold is about to lapse.
 *
 * Reproduce a failure with QUOTA_HOLDS_MODEL_SEED=<seed> (the seed is in the test's name and in
 * every failed expectation).
 */
const SEED = Number(process.env.QUOTA_HOLDS_MODEL_SEED ?? 20261206);
const STEPS = Number(process.env.QUOTA_HOLDS_MODEL_STEPS ?? 500);
const CHECK_EVERY = 50;
const INT_MAX = 2_147_483_647;
/** Wall time the suite may spend letting holds of ttl 1 s lapse. */
const LAPSE_BUDGET_MS = 9_000;
const REPRODUCE = `reproduce with QUOTA_HOLDS_MODEL_SEED=${SEED}`;

type Stored = 'held' | 'committed' | 'released' | 'expired';
const STATUSES: readonly Stored[] = ['held', 'committed', 'released', 'expired'];

interface Caller {
  readonly name: string;
  readonly token: string;
  readonly userId: string;
  readonly role: 'admin' | 'operator' | 'service' | 'member';
}

interface ModelType {
  readonly id: string;
  readonly name: string;
  max: number;
  readonly period: 'daily' | 'none';
  active: boolean;
}

interface ModelMember {
  readonly id: string;
  type: ModelType;
  active: boolean;
  balance: number;
  /** Ledger rows written for the member. */
  rows: number;
  user: Caller;
}

interface ModelHold {
  readonly id: string;
  readonly member: ModelMember;
  readonly amount: number;
  readonly maker: Caller;
  readonly note: string | null;
  readonly createdAt: string;
  readonly expiresAt: string;
  /** ttl 1 s: really lapses during the run. */
  readonly short: boolean;
  /** As stored: a lapsed hold stays `held` until the sweep or a settlement finds it. */
  status: Stored;
  committed: number | null;
  released: number | null;
  /** Who wrote the hold_release row ('system' for an expiry). */
  settler: string | null;
  /** settled_at when known (undefined: set, at a time the test does not know). */
  settledAt: string | null | undefined;
}

interface KeyRecord {
  readonly key: string;
  readonly caller: Caller;
  readonly path: string;
  readonly body: object | undefined;
  /** The same key with another request: 422 idempotency_key_mismatch. */
  readonly other: { readonly path: string; readonly body: object | undefined };
  readonly response: { readonly status: number; readonly body: unknown };
}

const expiresMs = (h: ModelHold) => Date.parse(h.expiresAt);
/** Another valid amount, for the same key with another request. */
const otherAmount = (amount: number) => (amount > 1 ? amount - 1 : amount + 1);

/** The hold as a client sees it at `now` (an open hold past its time shows `expired`). */
function shown(h: ModelHold, now: number) {
  const lapsed = h.status === 'held' && expiresMs(h) <= now;
  return {
    hold_id: h.id,
    member_id: h.member.id,
    amount: h.amount,
    status: lapsed ? 'expired' : h.status,
    committed_amount: lapsed ? 0 : h.committed,
    released_amount: lapsed ? h.amount : h.released,
    note: h.note,
    created_at: h.createdAt,
    expires_at: h.expiresAt,
    settled_at: h.settledAt === undefined ? expect.any(String) : h.settledAt,
  };
}

describe(`holds and the ledger against a reference model (seed ${SEED}; ${REPRODUCE})`, () => {
  let t: TestApp;
  let admin: Caller;
  let operator: Caller;
  let service: Caller;
  let otherService: Caller;
  let clockNow = new Date('2026-01-01T12:00:00.000Z');

  const caller = async (role: Caller['role'], name: string, memberId?: string): Promise<Caller> => {
    const user = await loginAs(t, role, memberId ? { memberId } : {});
    return { name, token: user.token, userId: user.userId, role };
  };

  beforeAll(async () => {
    t = await startTestApp({
      env: { THROTTLE_LIMIT: '0', QUOTA_HOLD_EXPIRY_INTERVAL_MS: '60000', JOBS_RESET_TICK_MS: '3600000' },
    });
    // The test runs the expiry sweep and the reset scheduler itself, at the times it chooses.
    stopScheduled(t.app.get(SchedulerRegistry), HOLD_EXPIRY_INTERVAL);
    jest.spyOn(t.app.get(JobsClock), 'now').mockImplementation(() => clockNow);
    admin = await caller('admin', 'admin');
    operator = await caller('operator', 'operator');
    service = await caller('service', 'service');
    otherService = await caller('service', 'other service');
  });
  afterAll(async () => {
    await t?.close();
  });

  it(`${STEPS} random operations with holds agree with the model, and so do the database and the listings`, async () => {
    const { random, int, pick } = seededRandom(SEED);

    const types: ModelType[] = [];
    for (const [max, period] of [
      [50, 'daily'],
      [120, 'daily'],
      [30, 'none'],
    ] as const) {
      const config = await createConfig(t, { maxQuota: max, resetPeriod: period });
      // The configs existed long before the periods the reset scheduler is shown.
      await sql(t, "UPDATE member_quota_config SET created_at = '2025-06-01 00:00:00.000' WHERE id = ?", [config.id]);
      types.push({ id: config.id, name: config.membershipType, max, period, active: true });
    }
    const members: ModelMember[] = [];
    for (let i = 0; i < 6; i++) {
      const type = types[i % types.length];
      const created = await createMember(t, { membershipType: type.name });
      const user = await caller('member', `member ${created.id}`, created.id);
      members.push({ id: created.id, type, active: true, balance: type.max, rows: 1, user });
    }
    const holds: ModelHold[] = [];
    const keys: KeyRecord[] = [];
    let keyCounter = 0;
    let lapseWaitedMs = 0;
    let virtualDay = 0;
    let where = '';
    let replays = 0;
    /** Runs one step or check; a failure names it, with the seed that reproduces it. */
    const labelled = async (label: string, work: () => Promise<void>) => {
      where = `${label}, seed ${SEED}: ${REPRODUCE}`;
      try {
        await work();
      } catch (err) {
        if (err instanceof Error) err.message = `${where}\n${err.message}`;
        throw err;
      }
    };

    const heldOf = (m: ModelMember) =>
      holds.filter((h) => h.member === m && h.status === 'held').reduce((sum, h) => sum + h.amount, 0);
    const nextKey = (prefix: string) => `${prefix}-${SEED}-${keyCounter++}`;
    const check = (res: Response, status: number, code?: string) => {
      expect({ where, status: res.status, code: res.body?.code }).toEqual({ where, status, code });
    };
    const post = (who: Caller, path: string, body: object | undefined, key?: string) => {
      let req = request(t.server).post(path).set(bearer(who.token));
      if (key !== undefined) req = req.set('Idempotency-Key', key);
      return body === undefined ? req : req.send(body);
    };
    const remember = (record: Omit<KeyRecord, 'response'>, res: Response) => {
      keys.push({ ...record, response: { status: res.status, body: res.body } });
    };
    /** Settled, or open and far from its expiry, or past it: what the service answers is known. */
    const certain = (h: ModelHold) => !(h.short && h.status === 'held' && Date.now() < expiresMs(h));
    /** A hold given back by an expiry: the model's side of HoldsService.expire. */
    const expireInModel = (h: ModelHold, at: string | undefined) => {
      h.status = 'expired';
      h.committed = 0;
      h.released = h.amount;
      h.settler = 'system';
      h.settledAt = at;
      h.member.balance += h.amount;
      h.member.rows++;
    };
    /**
     * The sweep's side at `now`: the due holds, longest overdue first, each given back unless its
     * units would take the balance above 2^31-1 (that one stays open, and the others still come back).
     */
    const expireDue = (now: Date): number => {
      const due = holds
        .filter((h) => h.status === 'held' && expiresMs(h) <= now.getTime())
        .sort((a, b) => expiresMs(a) - expiresMs(b) || Number(a.id) - Number(b.id));
      let expired = 0;
      for (const h of due) {
        if (h.member.balance + h.amount > INT_MAX) continue;
        expireInModel(h, now.toISOString());
        expired++;
      }
      return expired;
    };

    /** Waits until no hold of ttl 1 s is still open in real time (they lapse; nothing sweeps them). */
    const waitForShortHolds = async () => {
      const open = holds.filter((h) => h.short && h.status === 'held').map(expiresMs);
      const wait = Math.max(0, ...open) + 20 - Date.now();
      if (open.length === 0 || wait <= 0) return;
      lapseWaitedMs += wait;
      await new Promise((r) => setTimeout(r, wait));
    };

    // --- the operations ---------------------------------------------------------------------

    const consume = async () => {
      const m = pick(members);
      const own = random() < 0.35;
      const who = own ? m.user : service;
      const path = own ? '/api/v1/quota/me/consume' : `/api/v1/quota/members/${m.id}/consume`;
      const amount = random() < 0.1 ? Math.max(1, m.balance) : int(1, 30);
      const key = random() < 0.3 ? nextKey('c') : undefined;
      const res = await post(who, path, { amount }, key);
      if (!m.active) return check(res, 409, 'member_inactive');
      if (!m.type.active) return check(res, 409, 'config_inactive');
      if (amount > m.balance) {
        check(res, 409, 'insufficient_quota');
        expect({ where, balance: res.body.balance }).toEqual({ where, balance: m.balance });
        return;
      }
      check(res, 200);
      m.balance -= amount;
      m.rows++;
      expect({ where, balance: res.body.data.balance }).toEqual({ where, balance: m.balance });
      if (key)
        remember(
          { key, caller: who, path, body: { amount }, other: { path, body: { amount: otherAmount(amount) } } },
          res,
        );
    };

    const refund = async () => {
      const m = pick(members);
      const amount = int(1, 30);
      const res = await post(service, `/api/v1/quota/members/${m.id}/refund`, { amount });
      if (!m.active) return check(res, 409, 'member_inactive');
      if (!m.type.active) return check(res, 409, 'config_inactive');
      if (m.balance + amount > INT_MAX) return check(res, 422, 'balance_out_of_range');
      check(res, 200);
      m.balance += amount;
      m.rows++;
      expect({ where, balance: res.body.data.balance }).toEqual({ where, balance: m.balance });
    };

    const adjust = async (toTheCap = false) => {
      const m = pick(members);
      const useNew = toTheCap || random() < 0.4;
      const next = toTheCap ? INT_MAX - int(0, 40) : useNew ? int(0, 200) : m.balance + pick([-1, 1]) * int(1, 60);
      const delta = next - m.balance;
      const body = useNew ? { new_quota: next } : { delta };
      const key = random() < 0.3 ? nextKey('a') : undefined;
      const path = `/api/v1/admin/quota/members/${m.id}/adjust`;
      const res = await post(admin, path, body, key);
      if (next < 0) return check(res, 422, 'negative_balance');
      if (next > INT_MAX) return check(res, 422, 'balance_out_of_range');
      check(res, 200);
      expect({ where, data: res.body.data }).toMatchObject({ where, data: { delta, balance: next } });
      m.balance = next;
      m.rows++;
      const other = useNew ? { new_quota: otherAmount(next) } : { delta: delta + Math.sign(delta) };
      if (key) remember({ key, caller: admin, path, body, other: { path, body: other } }, res);
    };

    const makeHold = async () => {
      const m = pick(members);
      const roll = random();
      const maker = roll < 0.5 ? service : roll < 0.75 ? m.user : admin;
      const path = maker.role === 'member' ? '/api/v1/quota/me/holds' : `/api/v1/quota/members/${m.id}/holds`;
      const amountRoll = random();
      const amount =
        amountRoll < 0.1
          ? Math.max(1, m.balance)
          : amountRoll < 0.2
            ? Math.min(INT_MAX, m.balance + int(1, 10))
            : int(1, 40);
      const short = lapseWaitedMs < LAPSE_BUDGET_MS && random() < 0.1;
      const ttlRoll = random();
      const ttl = short ? 1 : ttlRoll < 0.25 ? undefined : pick([600, 1800, 3600, 7200, 86_400]);
      const note = random() < 0.3 ? `hold ${keyCounter}` : undefined;
      const body = { amount, ...(ttl === undefined ? {} : { ttl_seconds: ttl }), ...(note ? { note } : {}) };
      const key = random() < 0.3 ? nextKey('h') : undefined;
      const res = await post(maker, path, body, key);
      if (!m.active) return check(res, 409, 'member_inactive');
      if (!m.type.active) return check(res, 409, 'config_inactive');
      if (amount > m.balance) {
        check(res, 409, 'insufficient_quota');
        expect({ where, balance: res.body.balance }).toEqual({ where, balance: m.balance });
        return;
      }
      // members.quota_held has the balance's range: open holds keep at most 2^31-1 units.
      if (heldOf(m) + amount > INT_MAX) return check(res, 422, 'validation_failed');
      check(res, 201);
      m.balance -= amount;
      m.rows++;
      const data = res.body.data;
      expect({ where, data, remaining: res.headers['x-quota-remaining'] }).toEqual({
        where,
        data: {
          hold_id: expect.stringMatching(/^[1-9]\d*$/),
          member_id: m.id,
          amount,
          status: 'held',
          committed_amount: null,
          released_amount: null,
          note: note ?? null,
          created_at: expect.any(String),
          expires_at: expect.any(String),
          settled_at: null,
          balance: m.balance,
        },
        remaining: String(m.balance),
      });
      expect({ where, ttl: Date.parse(data.expires_at) - Date.parse(data.created_at) }).toEqual({
        where,
        ttl: (ttl ?? 300) * 1000,
      });
      holds.push({
        id: data.hold_id,
        member: m,
        amount,
        maker,
        note: note ?? null,
        createdAt: data.created_at,
        expiresAt: data.expires_at,
        short,
        status: 'held',
        committed: null,
        released: null,
        settler: null,
        settledAt: null,
      });
      if (key)
        remember(
          { key, caller: maker, path, body, other: { path, body: { ...body, amount: otherAmount(amount) } } },
          res,
        );
    };

    /** A hold whose answer is known now: mostly open ones, sometimes any. */
    const pickHold = (): ModelHold | undefined => {
      const known = holds.filter(certain);
      const open = known.filter((h) => h.status === 'held');
      const from = open.length > 0 && random() < 0.7 ? open : known;
      return from.length === 0 ? undefined : pick(from);
    };

    const settle = async () => {
      const h = pickHold();
      if (!h) return;
      const m = h.member;
      const settler = random() < 0.7 ? h.maker : admin;
      const commit = random() < 0.65;
      const base = `/api/v1/quota/holds/${h.id}`;
      let body: object | undefined;
      let amount: number | undefined;
      if (commit) {
        const roll = random();
        if (roll < 0.15) body = undefined;
        else if (roll < 0.3) body = {};
        else {
          amount = pick([0, int(1, h.amount), h.amount, h.amount + int(1, 5)]);
          body = { amount };
        }
      }
      const path = `${base}/${commit ? 'commit' : 'release'}`;
      const key = random() < 0.3 ? nextKey('s') : undefined;
      const now = Date.now();
      const res = await post(settler, path, body, key);
      const committed = commit ? (amount ?? h.amount) : 0;
      if (committed > h.amount) return check(res, 422, 'validation_failed');
      if (h.status === 'committed' || h.status === 'released') {
        check(res, 409, 'hold_settled');
        expect({ where, hold_status: res.body.hold_status }).toEqual({ where, hold_status: h.status });
        return;
      }
      if (h.status === 'expired') return check(res, 409, 'hold_expired');
      const fits = m.balance + h.amount <= INT_MAX;
      if (expiresMs(h) <= now) {
        // Past its time but not swept yet: refused, and given back at once (if the balance can take it).
        check(res, 409, 'hold_expired');
        if (fits) expireInModel(h, undefined);
        return;
      }
      // Units that would take the balance above 2^31-1 cannot come back yet: the hold stays open.
      if (!fits) return check(res, 422, 'balance_out_of_range');
      check(res, 200);
      h.status = commit ? 'committed' : 'released';
      h.committed = committed;
      h.released = h.amount - committed;
      h.settler = settler.userId;
      h.settledAt = res.body.data.settled_at;
      m.balance += h.amount - committed;
      m.rows += committed > 0 ? 2 : 1;
      expect({ where, data: res.body.data }).toEqual({
        where,
        data: { ...shown(h, now), settled_at: expect.any(String), balance: m.balance },
      });
      const other = commit
        ? { path, body: amount === undefined ? { amount: 0 } : {} }
        : { path: `${base}/commit`, body: {} };
      if (key) remember({ key, caller: settler, path, body, other }, res);
    };

    /** Someone who may not settle the hold: told it does not exist, and nothing changes. */
    const settleByStranger = async () => {
      const h = pickHold();
      if (!h) return;
      const strangers = [otherService, operator, ...members.map((m) => m.user), service].filter(
        (c) => c.userId !== h.maker.userId,
      );
      const who = pick(strangers);
      const commit = random() < 0.5;
      const res = await post(
        who,
        `/api/v1/quota/holds/${h.id}/${commit ? 'commit' : 'release'}`,
        commit ? {} : undefined,
      );
      check(res, 404, 'not_found');
    };

    const readHold = async () => {
      const h = pickHold();
      if (!h) return;
      const stranger = members.find((m) => m !== h.member)!.user;
      const who = pick([admin, operator, h.maker, h.member.user, stranger]);
      const now = Date.now();
      const res = await request(t.server).get(`/api/v1/quota/holds/${h.id}`).set(bearer(who.token));
      if (who === stranger) return check(res, 404, 'not_found');
      check(res, 200);
      expect({ where, data: res.body.data }).toEqual({ where, data: shown(h, now) });
    };

    const replay = async () => {
      if (keys.length === 0) return;
      const record = pick(keys);
      if (random() < 0.3) {
        const res = await post(record.caller, record.other.path, record.other.body, record.key);
        return check(res, 422, 'idempotency_key_mismatch');
      }
      const res = await post(record.caller, record.path, record.body, record.key);
      replays++;
      expect({ where, status: res.status, body: res.body, replayed: res.headers['idempotent-replayed'] }).toEqual({
        where,
        ...record.response,
        replayed: 'true',
      });
    };

    const changeType = async () => {
      const m = pick(members);
      const target = pick(types.filter((type) => type !== m.type));
      const res = await request(t.server)
        .patch(`/api/v1/admin/members/${m.id}`)
        .set(bearer(admin.token))
        .send({ membership_type: target.name });
      if (!target.active) return check(res, 409, 'config_inactive');
      check(res, 200);
      m.balance = Math.min(INT_MAX, Math.max(0, m.balance + target.max - m.type.max));
      m.type = target;
      m.rows++;
      expect({ where, data: res.body.data }).toMatchObject({
        where,
        data: { membership_type: target.name, quota_balance: m.balance },
      });
    };

    const toggleMember = async () => {
      const m = pick(members);
      const active = random() < (m.active ? 0.7 : 0.9);
      const res = await request(t.server)
        .patch(`/api/v1/admin/members/${m.id}`)
        .set(bearer(admin.token))
        .send({ is_active: active });
      check(res, 200);
      m.active = active;
    };

    const toggleConfig = async () => {
      const type = pick(types);
      const active = random() < (type.active ? 0.6 : 0.9);
      const res = await request(t.server)
        .patch(`/api/v1/admin/quota/configs/${type.id}`)
        .set(bearer(admin.token))
        .send({ is_active: active });
      check(res, 200);
      expect({ where, active: res.body.data.is_active }).toEqual({ where, active });
      type.active = active;
    };

    /** A new max_quota, applied at once (a background operation) or at the next reset. */
    const changeConfig = async () => {
      const type = pick(types);
      const apply = pick(['reset', 'delta', 'next_reset'] as const);
      const max = int(20, 150);
      const res = await request(t.server)
        .patch(`/api/v1/admin/quota/configs/${type.id}`)
        .set(bearer(admin.token))
        .send({ max_quota: max, apply });
      check(res, 200);
      if (apply !== 'next_reset') {
        const op = await waitForOperation(t, admin.token, res.body.meta.operation_id);
        expect({ where, status: op.status }).toEqual({ where, status: 'completed' });
        for (const m of members.filter((m) => m.type === type)) {
          const shifted = apply === 'reset' ? max - heldOf(m) : m.balance + max - type.max;
          m.balance = Math.min(INT_MAX, Math.max(0, shifted));
          m.rows++;
        }
      }
      type.max = max;
    };

    /** The next day for the reset scheduler: one periodic reset per active config with a period. */
    const periodicReset = async () => {
      virtualDay++;
      clockNow = new Date(Date.parse('2026-01-01T12:00:00.000Z') + virtualDay * 86_400_000);
      const created = await t.app.get(ResetScheduler).tick();
      for (const id of created) {
        const op = await waitForOperation(t, admin.token, id);
        expect({ where, status: op.status }).toEqual({ where, status: 'completed' });
      }
      const due = types.filter((type) => type.active && type.period !== 'none');
      const configs =
        created.length === 0
          ? []
          : await sql<{ config_id: unknown }>(
              t,
              `SELECT config_id FROM quota_operations WHERE id IN (${created.map(() => '?').join(', ')}) ORDER BY config_id`,
              created,
            );
      expect({ where, configs: configs.map((r) => String(r.config_id)).sort() }).toEqual({
        where,
        configs: due.map((type) => type.id).sort(),
      });
      for (const m of members.filter((m) => due.includes(m.type))) {
        m.balance = Math.max(0, m.type.max - heldOf(m));
        m.rows++;
      }
    };

    /** The sweep at the real time: gives back every hold past its time, and only those. */
    const sweepNow = async () => {
      const now = new Date();
      const expired = await t.app.get(HoldExpiryService).sweep(now);
      expect({ where, expired }).toEqual({ where, expired: expireDue(now) });
    };

    /** The sweep as it will run later (as if the service had been down meanwhile). */
    const sweepAhead = async (seconds = pick([60, 700, 2000, 4000, 8000, 100_000])) => {
      const now = new Date(Date.now() + seconds * 1000);
      const expired = await t.app.get(HoldExpiryService).sweep(now);
      expect({ where, expired }).toEqual({ where, expired: expireDue(now) });
    };

    // --- the database and the listings against the model -------------------------------------

    const listAll = async (who: Caller, path: string, query: Record<string, string>) => {
      const limit = pick([7, 50, 500]);
      const items: unknown[] = [];
      let cursor: string | undefined;
      for (;;) {
        const res = await request(t.server)
          .get(path)
          .query({ ...query, limit: String(limit), ...(cursor ? { cursor } : {}) })
          .set(bearer(who.token));
        check(res, 200);
        items.push(...res.body.data);
        cursor = res.body.meta.next_cursor ?? undefined;
        if (!cursor) break;
        expect({ where, page: res.body.data.length }).toEqual({ where, page: limit });
      }
      return items;
    };

    const expectListing = (items: unknown[], selected: ModelHold[], now: number, label: string) => {
      const expected = [...selected].sort((a, b) => Number(b.id) - Number(a.id)).map((h) => shown(h, now));
      expect({ where, label, items }).toEqual({ where, label, items: expected });
    };

    const compareListings = async (everything: boolean) => {
      await waitForShortHolds();
      const now = Date.now();
      expectListing(await listAll(operator, '/api/v1/admin/quota/holds', {}), holds, now, 'all holds');
      const byShown = (status: string) => (h: ModelHold) => shown(h, now).status === status;
      for (const m of everything ? members : [pick(members)]) {
        const own = holds.filter((h) => h.member === m);
        expectListing(
          await listAll(admin, '/api/v1/admin/quota/holds', { member_id: m.id }),
          own,
          now,
          `member ${m.id}`,
        );
        expectListing(await listAll(m.user, '/api/v1/quota/me/holds', {}), own, now, `own holds of ${m.id}`);
        for (const status of everything ? STATUSES : [pick(STATUSES)]) {
          expectListing(
            await listAll(admin, '/api/v1/admin/quota/holds', { member_id: m.id, status }),
            own.filter(byShown(status)),
            now,
            `member ${m.id} ${status}`,
          );
          expectListing(
            await listAll(m.user, '/api/v1/quota/me/holds', { status }),
            own.filter(byShown(status)),
            now,
            `own ${status} holds of ${m.id}`,
          );
        }
      }
      const status = pick(STATUSES);
      expectListing(
        await listAll(admin, '/api/v1/admin/quota/holds', { status }),
        holds.filter(byShown(status)),
        now,
        `all ${status}`,
      );
    };

    const compareDatabase = async () => {
      const ids = members.map((m) => m.id);
      const rows = await sql<Record<string, unknown>>(
        t,
        `SELECT id, quota_balance, quota_held, is_active, membership_type FROM members WHERE id IN (${ids.map(() => '?').join(', ')}) ORDER BY id`,
        ids,
      );
      expect({
        where,
        members: rows.map((r) => ({
          id: String(r.id),
          balance: Number(r.quota_balance),
          held: Number(r.quota_held),
          active: Number(r.is_active) === 1,
          type: r.membership_type,
        })),
      }).toEqual({
        where,
        members: [...members]
          .sort((a, b) => Number(a.id) - Number(b.id))
          .map((m) => ({ id: m.id, balance: m.balance, held: heldOf(m), active: m.active, type: m.type.name })),
      });

      const stored = await sql<Record<string, unknown>>(
        t,
        'SELECT id, member_id, amount, status, committed_amount, released_amount, created_by FROM quota_holds ORDER BY id',
      );
      const orNull = (v: unknown) => (v === null ? null : Number(v));
      expect({
        where,
        holds: stored.map((r) => ({
          id: String(r.id),
          member: String(r.member_id),
          amount: Number(r.amount),
          status: r.status,
          committed: orNull(r.committed_amount),
          released: orNull(r.released_amount),
          by: String(r.created_by),
        })),
      }).toEqual({
        where,
        holds: holds.map((h) => ({
          id: h.id,
          member: h.member.id,
          amount: h.amount,
          status: h.status,
          committed: h.committed,
          released: h.released,
          by: h.maker.userId,
        })),
      });

      // Every member: as many ledger rows as the model wrote, summing to the balance.
      const ledger = await sql<Record<string, unknown>>(
        t,
        'SELECT member_id, COUNT(*) AS n, SUM(delta) AS total FROM member_quota_history GROUP BY member_id ORDER BY member_id',
      );
      const last = await sql<Record<string, unknown>>(
        t,
        `SELECT h.member_id, h.balance_after FROM member_quota_history h
          WHERE h.id = (SELECT MAX(id) FROM member_quota_history x WHERE x.member_id = h.member_id) ORDER BY h.member_id`,
      );
      expect({
        where,
        ledger: ledger.map((r, i) => ({
          member: String(r.member_id),
          rows: Number(r.n),
          total: Number(r.total),
          last: Number(last[i].balance_after),
        })),
      }).toEqual({
        where,
        ledger: [...members]
          .sort((a, b) => Number(a.id) - Number(b.id))
          .map((m) => ({ member: m.id, rows: m.rows, total: m.balance, last: m.balance })),
      });

      // Every hold: one `hold` row; one `hold_release` once settled; a `consumption` row for a committed part.
      const holdRows = await sql<Record<string, unknown>>(
        t,
        'SELECT hold_id, member_id, reason, delta, actor FROM member_quota_history WHERE hold_id IS NOT NULL ORDER BY id',
      );
      const byHold = new Map<string, unknown[]>();
      for (const r of holdRows) {
        const list = byHold.get(String(r.hold_id)) ?? [];
        list.push([String(r.member_id), r.reason, Number(r.delta), String(r.actor)]);
        byHold.set(String(r.hold_id), list);
      }
      expect({ where, rows: Object.fromEntries(byHold) }).toEqual({
        where,
        rows: Object.fromEntries(
          holds.map((h) => [
            h.id,
            [
              [h.member.id, 'hold', -h.amount, h.maker.userId],
              ...(h.status === 'held' ? [] : [[h.member.id, 'hold_release', h.amount, h.settler]]),
              ...(h.committed ? [[h.member.id, 'consumption', -h.committed, h.settler]] : []),
            ],
          ]),
        ),
      });
      expect({ where, report: await ledgerReport(t) }).toEqual({
        where,
        report: { checked: members.length, mismatches: [], held_mismatches: [] },
      });
    };

    // --- the run -------------------------------------------------------------------------------

    const operations: [number, string, () => Promise<void>][] = [
      [13, 'consume', consume],
      [5, 'refund', refund],
      [6, 'adjust', () => adjust()],
      [1, 'adjust to the cap', () => adjust(true)],
      [26, 'hold', makeHold],
      [22, 'settle', settle],
      [3, 'settle by a stranger', settleByStranger],
      [4, 'read a hold', readHold],
      [9, 'idempotent repeat', replay],
      [3, 'membership change', changeType],
      [3, 'member active', toggleMember],
      [2, 'config active', toggleConfig],
      [2, 'config change', changeConfig],
      [2, 'periodic reset', periodicReset],
      [3, 'sweep', sweepNow],
      [2, 'sweep ahead', () => sweepAhead()],
    ];
    const totalWeight = operations.reduce((sum, [w]) => sum + w, 0);
    const choose = () => {
      let roll = random() * totalWeight;
      for (const op of operations) {
        roll -= op[0];
        if (roll < 0) return op;
      }
      return operations[operations.length - 1];
    };

    for (let i = 0; i < STEPS; i++) {
      const [, name, run] = choose();
      await labelled(`step ${i} (${name})`, run);
      if ((i + 1) % CHECK_EVERY === 0) {
        await labelled(`check after step ${i}`, async () => {
          await compareDatabase();
          await compareListings(false);
        });
      }
    }

    await labelled('the end', async () => {
      await compareListings(true);
      await compareDatabase();
      // Every hold still open comes back by itself in the end (once no balance is at the cap).
      for (const m of members.filter((m) => m.balance + heldOf(m) > INT_MAX)) {
        const res = await post(admin, `/api/v1/admin/quota/members/${m.id}/adjust`, { new_quota: 0 });
        check(res, 200);
        m.balance = 0;
        m.rows++;
      }
      await sweepAhead(2 * 86_400);
      await compareDatabase();
      expect(members.map(heldOf)).toEqual(members.map(() => 0));
    });
    // The run exercised what it is about.
    const seen = new Set(holds.map((h) => h.status));
    expect({ seen: [...seen].sort(), replayed: replays > 0 }).toEqual({
      seen: ['committed', 'expired', 'released'],
      replayed: true,
    });
  }, 120_000);
});
