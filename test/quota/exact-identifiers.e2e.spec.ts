import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { bearer, loginAs } from '../support/auth';
import { createConfig, createMember, historyOf, quotaSnapshot } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';
import { expectProblem } from '../auth/helpers';

const MEMBERS = '/api/v1/admin/members';

/**
 * Identifiers are compared byte for byte on every database (contract §1): the same requests get
 * the same answers on the embedded database and on MySQL/MariaDB, whose default collations are
 * case-insensitive. Every case here runs on both drivers.
 */
describe('identifiers compare exactly', () => {
  let t: TestApp;
  let admin: string;
  let service: string;

  beforeAll(async () => {
    t = await startTestApp({ env: { THROTTLE_LIMIT: '0' } });
    admin = (await loginAs(t, 'admin')).token;
    service = (await loginAs(t, 'service')).token;
  });
  afterAll(async () => {
    await t?.close();
  });

  it('external ids that differ only in case are different members', async () => {
    const { membershipType } = await createConfig(t, { maxQuota: 10 });
    const stem = `Member-${randomBytes(4).toString('hex')}`;
    const variants = [stem, stem.toLowerCase(), stem.toUpperCase()];
    const ids: string[] = [];
    for (const externalId of variants) {
      const res = await request(t.server)
        .post(MEMBERS)
        .set(bearer(admin))
        .send({ external_id: externalId, membership_type: membershipType });
      expect(res.status).toBe(201);
      expect(res.body.data.external_id).toBe(externalId);
      ids.push(res.body.data.id as string);
    }
    expect(new Set(ids).size).toBe(3);
    // The exact one again is a conflict.
    expectProblem(
      await request(t.server)
        .post(MEMBERS)
        .set(bearer(admin))
        .send({ external_id: stem, membership_type: membershipType }),
      409,
      'member_exists',
    );
  });

  it('a batch takes case variants as distinct, and its 409 lists exactly the ones that exist', async () => {
    const { membershipType } = await createConfig(t, { maxQuota: 10 });
    const stem = `Batch-${randomBytes(4).toString('hex')}`;
    const created = await request(t.server)
      .post(`${MEMBERS}/batch`)
      .set(bearer(admin))
      .send({
        members: [
          { external_id: stem, membership_type: membershipType },
          { external_id: stem.toLowerCase(), membership_type: membershipType },
        ],
      });
    expect(created.status).toBe(201);
    expect(created.body.data.map((m: { external_id: string }) => m.external_id)).toEqual([stem, stem.toLowerCase()]);

    const before = await quotaSnapshot(t);
    const refused = await request(t.server)
      .post(`${MEMBERS}/batch`)
      .set(bearer(admin))
      .send({
        members: [
          { external_id: stem.toUpperCase(), membership_type: membershipType },
          { external_id: stem, membership_type: membershipType },
        ],
      });
    expectProblem(refused, 409, 'member_exists');
    expect(refused.body.external_ids).toEqual([stem]);
    expect(await quotaSnapshot(t)).toEqual(before);
  });

  it('Idempotency-Keys that differ only in case are different keys, and each replays its own answer', async () => {
    const member = await createMember(t, { maxQuota: 100 });
    const path = `/api/v1/quota/members/${member.id}/consume`;
    const key = `Order-${randomBytes(4).toString('hex')}`;
    const first = await request(t.server)
      .post(path)
      .set(bearer(service))
      .set('Idempotency-Key', key)
      .send({ amount: 1 });
    const second = await request(t.server)
      .post(path)
      .set(bearer(service))
      .set('Idempotency-Key', key.toLowerCase())
      .send({ amount: 2 });
    expect([first.status, second.status]).toEqual([200, 200]);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    expect(second.headers['idempotent-replayed']).toBeUndefined();
    expect([first.body.data.balance, second.body.data.balance]).toEqual([99, 97]);

    const replayFirst = await request(t.server)
      .post(path)
      .set(bearer(service))
      .set('Idempotency-Key', key)
      .send({ amount: 1 });
    expect(replayFirst.status).toBe(200);
    expect(replayFirst.headers['idempotent-replayed']).toBe('true');
    expect(replayFirst.body).toEqual(first.body);
    const replaySecond = await request(t.server)
      .post(path)
      .set(bearer(service))
      .set('Idempotency-Key', key.toLowerCase())
      .send({ amount: 2 });
    expect(replaySecond.headers['idempotent-replayed']).toBe('true');
    expect(replaySecond.body).toEqual(second.body);
    // Another body under the exact key is a mismatch; under a third case variant, a new request.
    expectProblem(
      await request(t.server).post(path).set(bearer(service)).set('Idempotency-Key', key).send({ amount: 5 }),
      422,
      'idempotency_key_mismatch',
    );
    const third = await request(t.server)
      .post(path)
      .set(bearer(service))
      .set('Idempotency-Key', key.toUpperCase())
      .send({ amount: 5 });
    expect(third.status).toBe(200);
    expect(third.body.data.balance).toBe(92);

    const consumptions = (await historyOf(t, member.id)).filter((h) => h.reason === 'consumption');
    expect(consumptions.map((h) => h.idempotency_key)).toEqual([key, key.toLowerCase(), key.toUpperCase()]);
  });

  it('bulk-adjust Idempotency-Keys that differ only in case start separate operations', async () => {
    const member = await createMember(t, { maxQuota: 10 });
    const key = `Campaign-${randomBytes(4).toString('hex')}`;
    const body = { member_ids: [member.id], delta: 1 };
    const upper = await request(t.server)
      .post('/api/v1/admin/quota/bulk-adjust')
      .set(bearer(admin))
      .set('Idempotency-Key', key)
      .send(body);
    const lower = await request(t.server)
      .post('/api/v1/admin/quota/bulk-adjust')
      .set(bearer(admin))
      .set('Idempotency-Key', key.toLowerCase())
      .send(body);
    expect([upper.status, lower.status]).toEqual([202, 202]);
    expect(lower.headers['idempotent-replayed']).toBeUndefined();
    expect(lower.body.data.operation_id).not.toBe(upper.body.data.operation_id);
  });
});
