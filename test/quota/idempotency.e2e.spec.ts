import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { IdempotencyService } from '../../src/quota/idempotency.service';
import { bearer, loginAs } from '../support/auth';
import { balanceOf, createMember, historyOf, ledgerReport, quotaSnapshot, sql } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';
import { expectProblem } from '../auth/helpers';

const consumeOf = (id: string) => `/api/v1/quota/members/${id}/consume`;

describe('Idempotency-Key', () => {
  let t: TestApp;
  let service: { token: string; userId: string };
  let otherService: { token: string; userId: string };
  let admin: string;

  beforeAll(async () => {
    t = await startTestApp({ env: { THROTTLE_LIMIT: '0' } });
    service = await loginAs(t, 'service');
    otherService = await loginAs(t, 'service');
    admin = (await loginAs(t, 'admin')).token;
  });
  afterAll(async () => {
    await t?.close();
  });

  const consume = (id: string, key: string, body: object, token = service.token) =>
    request(t.server).post(consumeOf(id)).set(bearer(token)).set('Idempotency-Key', key).send(body);

  it('replays the first answer for the same key and body, changing nothing', async () => {
    const member = await createMember(t, { maxQuota: 50 });
    const key = randomUUID();
    const first = await consume(member.id, key, { amount: 5, note: 'n' });
    expect(first.status).toBe(200);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    // Another consume in between: the replay still says what the first answer said.
    await request(t.server).post(consumeOf(member.id)).set(bearer(service.token)).send({ amount: 1 }).expect(200);
    const before = await quotaSnapshot(t);

    const again = await consume(member.id, key, { note: 'n', amount: 5 });
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.headers['x-quota-remaining']).toBe('45');
    expect(again.headers['x-quota-limit']).toBe('50');
    expect(await quotaSnapshot(t)).toEqual(before);
    expect(await balanceOf(t, member.id)).toBe(44);
    const keyed = (await historyOf(t, member.id)).filter((h) => h.idempotency_key === key);
    expect(keyed).toEqual([
      expect.objectContaining({ id: first.body.data.history_id, delta: -5, actor: service.userId }),
    ]);
  });

  it('refuses the same key with another body, member or operation (422 idempotency_key_mismatch)', async () => {
    const member = await createMember(t);
    const other = await createMember(t);
    const key = randomUUID();
    await consume(member.id, key, { amount: 5 }).expect(200);
    const before = await quotaSnapshot(t);
    expectProblem(await consume(member.id, key, { amount: 6 }), 422, 'idempotency_key_mismatch');
    expectProblem(await consume(member.id, key, { amount: 5, note: 'different' }), 422, 'idempotency_key_mismatch');
    expectProblem(await consume(other.id, key, { amount: 5 }), 422, 'idempotency_key_mismatch');
    expectProblem(
      await request(t.server)
        .post(`/api/v1/quota/members/${member.id}/refund`)
        .set(bearer(service.token))
        .set('Idempotency-Key', key)
        .send({ amount: 5 }),
      422,
      'idempotency_key_mismatch',
    );
    expect(await quotaSnapshot(t)).toEqual(before);
  });

  it('scopes keys per caller: another caller with the same key makes its own change', async () => {
    const member = await createMember(t, { maxQuota: 50 });
    const key = randomUUID();
    await consume(member.id, key, { amount: 5 }).expect(200);
    const theirs = await consume(member.id, key, { amount: 5 }, otherService.token);
    expect(theirs.status).toBe(200);
    expect(theirs.headers['idempotent-replayed']).toBeUndefined();
    expect(theirs.body.data.balance).toBe(40);
    expect(await balanceOf(t, member.id)).toBe(40);
  });

  it('stores neither validation failures nor refusals: the key can be used once the request is right', async () => {
    const member = await createMember(t, { maxQuota: 3 });
    const key = randomUUID();
    expectProblem(await consume(member.id, key, { amount: -1 }), 422, 'validation_failed');
    expectProblem(await consume(member.id, key, { amount: 4 }), 409, 'insufficient_quota');
    expect(await sql(t, 'SELECT key_hash FROM idempotency_keys WHERE member_id = ?', [member.id])).toEqual([]);
    const ok = await consume(member.id, key, { amount: 3 });
    expect(ok.status).toBe(200);
    expect(ok.headers['idempotent-replayed']).toBeUndefined();
    expect(ok.body.data.balance).toBe(0);
  });

  it('replays a committed key even when the same change would now be refused', async () => {
    const member = await createMember(t, { maxQuota: 5 });
    const key = randomUUID();
    const first = await consume(member.id, key, { amount: 5 });
    expect(first.status).toBe(200);
    expect(first.body.data.balance).toBe(0);
    const before = await quotaSnapshot(t);

    const again = await consume(member.id, key, { amount: 5 });
    expect(again.status).toBe(200);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.body).toEqual(first.body);
    expectProblem(await consume(member.id, key, { amount: 4 }), 422, 'idempotency_key_mismatch');
    expect(await quotaSnapshot(t)).toEqual(before);
  });

  it('accepts keys up to 255 printable characters and refuses longer or unprintable ones (422)', async () => {
    const member = await createMember(t, { maxQuota: 50 });
    await consume(member.id, 'k'.repeat(255), { amount: 1 }).expect(200);
    const before = await quotaSnapshot(t);
    const long = await consume(member.id, 'k'.repeat(256), { amount: 1 });
    expectProblem(long, 422, 'validation_failed');
    expect(long.body.errors).toEqual([{ field: 'Idempotency-Key', message: expect.any(String) }]);
    expectProblem(await consume(member.id, '', { amount: 1 }), 422, 'validation_failed');
    expectProblem(await consume(member.id, 'caf\u00e9', { amount: 1 }), 422, 'validation_failed');
    expect(await quotaSnapshot(t)).toEqual(before);
  });

  it('covers refund and adjust too (the adjustment is audited once)', async () => {
    const member = await createMember(t, { maxQuota: 50 });
    const refundKey = randomUUID();
    const refund = () =>
      request(t.server)
        .post(`/api/v1/quota/members/${member.id}/refund`)
        .set(bearer(service.token))
        .set('Idempotency-Key', refundKey)
        .send({ amount: 3 });
    const r1 = await refund();
    const r2 = await refund();
    expect([r1.status, r2.status]).toEqual([200, 200]);
    expect(r2.body).toEqual(r1.body);
    expect(r2.headers['idempotent-replayed']).toBe('true');

    const adjustKey = randomUUID();
    const adjust = (body: object) =>
      request(t.server)
        .post(`/api/v1/admin/quota/members/${member.id}/adjust`)
        .set(bearer(admin))
        .set('Idempotency-Key', adjustKey)
        .send(body);
    const a1 = await adjust({ new_quota: 10 });
    const a2 = await adjust({ new_quota: 10, reason: 'manual_adjustment' });
    expect([a1.status, a2.status]).toEqual([200, 200]);
    expect(a2.body).toEqual(a1.body);
    expect(a1.body.data).toMatchObject({ delta: -43, balance: 10 });
    expect(a2.headers['idempotent-replayed']).toBe('true');
    expectProblem(await adjust({ new_quota: 11 }), 422, 'idempotency_key_mismatch');

    expect(await balanceOf(t, member.id)).toBe(10);
    const audit = await sql(
      t,
      "SELECT id FROM admin_audit_log WHERE entity_type = 'member' AND entity_id = ? AND action = 'member.adjust'",
      [member.id],
    );
    expect(audit).toHaveLength(1);
  });

  it('20 parallel requests with one key debit once; the others replay or are told it is in progress', async () => {
    const member = await createMember(t, { maxQuota: 100 });
    const key = randomUUID();
    const responses = await Promise.all(Array.from({ length: 20 }, () => consume(member.id, key, { amount: 7 })));
    const firsts = responses.filter((r) => r.status === 200 && r.headers['idempotent-replayed'] === undefined);
    const replays = responses.filter((r) => r.status === 200 && r.headers['idempotent-replayed'] === 'true');
    const inProgress = responses.filter((r) => r.status === 409);
    expect(firsts).toHaveLength(1);
    expect(replays.length + inProgress.length).toBe(19);
    for (const r of replays) expect(r.body).toEqual(firsts[0].body);
    for (const r of inProgress) expect(r.body.code).toBe('idempotency_key_in_use');
    expect(await balanceOf(t, member.id)).toBe(93);
    expect((await historyOf(t, member.id)).filter((h) => h.reason === 'consumption')).toHaveLength(1);
    expect(await ledgerReport(t, member.id)).toEqual({ checked: 1, mismatches: [], held_mismatches: [] });
  });

  it('keys expire after 24 h: an expired key is a new request, and the purge deletes expired keys', async () => {
    const member = await createMember(t, { maxQuota: 50 });
    const key = randomUUID();
    await consume(member.id, key, { amount: 5 }).expect(200);
    const [row] = await sql<{ created_at: unknown; expires_at: unknown }>(
      t,
      'SELECT created_at, expires_at FROM idempotency_keys WHERE member_id = ?',
      [member.id],
    );
    const toDate = (v: unknown) => (v instanceof Date ? v : new Date(`${String(v).replace(' ', 'T')}Z`));
    expect(toDate(row.expires_at).getTime() - toDate(row.created_at).getTime()).toBe(24 * 3600 * 1000);

    await sql(t, "UPDATE idempotency_keys SET expires_at = '2000-01-01 00:00:00.000' WHERE member_id = ?", [member.id]);
    const again = await consume(member.id, key, { amount: 5 });
    expect(again.status).toBe(200);
    expect(again.headers['idempotent-replayed']).toBeUndefined();
    expect(again.body.data.balance).toBe(40);

    const other = await createMember(t);
    await consume(other.id, randomUUID(), { amount: 1 }).expect(200);
    await consume(other.id, randomUUID(), { amount: 1 }).expect(200);
    await sql(t, "UPDATE idempotency_keys SET expires_at = '2000-01-01 00:00:00.000' WHERE member_id = ?", [other.id]);
    const purged = await t.app.get(IdempotencyService).purgeExpired();
    expect(purged).toBe(2);
    expect(await sql(t, 'SELECT key_hash FROM idempotency_keys WHERE member_id = ?', [other.id])).toEqual([]);
    expect(await sql(t, 'SELECT key_hash FROM idempotency_keys WHERE member_id = ?', [member.id])).toHaveLength(1);
  });
});
