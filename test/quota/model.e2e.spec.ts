import request, { type Response } from 'supertest';
import { bearer, loginAs } from '../support/auth';
import { createConfig, createMember, historyOf, ledgerReport, sql } from '../support/quota-factories';
import { mulberry32 } from '../support/seeded-random';
import { startTestApp, type TestApp } from '../support/test-app';

/**
 * A seeded random sequence of operations over HTTP, checked step by step against a small
 * reference model, then the ledger invariant. Reproduce a failure with QUOTA_MODEL_SEED=<seed>.
 */
const SEED = Number(process.env.QUOTA_MODEL_SEED ?? 20261123);
const STEPS = 400;
const INT_MAX = 2_147_483_647;

interface ModelMember {
  id: string;
  balance: number;
  type: string;
  active: boolean;
  historyRows: number;
}

interface KeyRecord {
  memberId: string;
  path: string;
  body: object;
  token: string;
  response: { status: number; body: unknown };
}

describe(`ledger against a reference model (seed ${SEED})`, () => {
  let t: TestApp;
  let service: string;
  let admin: string;

  beforeAll(async () => {
    t = await startTestApp({ env: { THROTTLE_LIMIT: '0' } });
    service = (await loginAs(t, 'service')).token;
    admin = (await loginAs(t, 'admin')).token;
  });
  afterAll(async () => {
    await t?.close();
  });

  it(`${STEPS} random operations agree with the model, and the ledger balances`, async () => {
    const random = mulberry32(SEED);
    const int = (min: number, max: number) => min + Math.floor(random() * (max - min + 1));
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];

    const regular = await createConfig(t, { maxQuota: 50 });
    const premium = await createConfig(t, { maxQuota: 200 });
    const maxOf: Record<string, number> = { [regular.membershipType]: 50, [premium.membershipType]: 200 };
    const members: ModelMember[] = [];
    for (let i = 0; i < 5; i++) {
      const type = i % 2 === 0 ? regular.membershipType : premium.membershipType;
      const m = await createMember(t, { membershipType: type });
      members.push({ id: m.id, balance: maxOf[type], type, active: true, historyRows: 1 });
    }
    const keys = new Map<string, KeyRecord>();
    let keyCounter = 0;

    const step = async (index: number) => {
      const m = pick(members);
      const roll = random();
      const where = `step ${index} (seed ${SEED})`;
      const check = (res: Response, status: number, code?: string) => {
        expect({ where, status: res.status, code: res.body?.code }).toEqual({ where, status, code });
      };

      if (roll < 0.1 && keys.size > 0) {
        // Replay an earlier key with its body: the first answer, nothing changes.
        const record = pick([...keys.values()]);
        const res = await request(t.server)
          .post(record.path)
          .set(bearer(record.token))
          .set('Idempotency-Key', [...keys.entries()].find(([, r]) => r === record)![0])
          .send(record.body);
        expect({ where, status: res.status, body: res.body, replayed: res.headers['idempotent-replayed'] }).toEqual({
          where,
          ...record.response,
          replayed: 'true',
        });
        return;
      }
      if (roll < 0.5) {
        const amount = int(1, 25);
        const key = random() < 0.3 ? `k-${SEED}-${keyCounter++}` : undefined;
        const path = `/api/v1/quota/members/${m.id}/consume`;
        let req = request(t.server).post(path).set(bearer(service));
        if (key) req = req.set('Idempotency-Key', key);
        const res = await req.send({ amount });
        if (!m.active) return check(res, 409, 'member_inactive');
        if (amount > m.balance) {
          check(res, 409, 'insufficient_quota');
          expect(res.body.balance).toBe(m.balance);
          return;
        }
        check(res, 200);
        m.balance -= amount;
        m.historyRows++;
        expect(res.body.data.balance).toBe(m.balance);
        if (key)
          keys.set(key, {
            memberId: m.id,
            path,
            body: { amount },
            token: service,
            response: { status: 200, body: res.body },
          });
        return;
      }
      if (roll < 0.6) {
        const amount = int(1, 10);
        const res = await request(t.server)
          .post(`/api/v1/quota/members/${m.id}/refund`)
          .set(bearer(service))
          .send({ amount });
        if (!m.active) return check(res, 409, 'member_inactive');
        check(res, 200);
        m.balance += amount;
        m.historyRows++;
        expect(res.body.data.balance).toBe(m.balance);
        return;
      }
      if (roll < 0.8) {
        const useNew = random() < 0.4;
        const next = useNew ? int(0, 300) : m.balance + pick([-1, 1]) * int(1, 60);
        const body = useNew ? { new_quota: next } : { delta: next - m.balance };
        const key = random() < 0.3 ? `a-${SEED}-${keyCounter++}` : undefined;
        const path = `/api/v1/admin/quota/members/${m.id}/adjust`;
        let req = request(t.server).post(path).set(bearer(admin));
        if (key) req = req.set('Idempotency-Key', key);
        const res = await req.send(body);
        if (next < 0) {
          check(res, 422, 'negative_balance');
          return;
        }
        check(res, 200);
        expect(res.body.data).toMatchObject({ delta: next - m.balance, balance: next });
        m.balance = next;
        m.historyRows++;
        if (key) keys.set(key, { memberId: m.id, path, body, token: admin, response: { status: 200, body: res.body } });
        return;
      }
      if (roll < 0.9) {
        const type = m.type === regular.membershipType ? premium.membershipType : regular.membershipType;
        const res = await request(t.server)
          .patch(`/api/v1/admin/members/${m.id}`)
          .set(bearer(admin))
          .send({ membership_type: type });
        check(res, 200);
        m.balance = Math.min(INT_MAX, Math.max(0, m.balance + maxOf[type] - maxOf[m.type]));
        m.type = type;
        m.historyRows++;
        expect(res.body.data).toMatchObject({ membership_type: type, quota_balance: m.balance });
        return;
      }
      const active = random() < 0.7;
      const res = await request(t.server)
        .patch(`/api/v1/admin/members/${m.id}`)
        .set(bearer(admin))
        .send({ is_active: active });
      check(res, 200);
      m.active = active;
    };

    for (let i = 0; i < STEPS; i++) await step(i);

    for (const m of members) {
      const [row] = await sql<{ quota_balance: number; membership_type: string; is_active: unknown }>(
        t,
        'SELECT quota_balance, membership_type, is_active FROM members WHERE id = ?',
        [m.id],
      );
      expect({
        id: m.id,
        balance: Number(row.quota_balance),
        type: row.membership_type,
        active: Number(row.is_active) === 1,
      }).toEqual({
        id: m.id,
        balance: m.balance,
        type: m.type,
        active: m.active,
      });
      const history = await historyOf(t, m.id);
      expect(history).toHaveLength(m.historyRows);
      expect(history[history.length - 1].balance_after).toBe(m.balance);
    }
    expect(await ledgerReport(t)).toEqual({ checked: expect.any(Number), mismatches: [], held_mismatches: [] });
  });
});
