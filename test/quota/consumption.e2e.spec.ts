import request from 'supertest';
import { bearer, loginAs } from '../support/auth';
import {
  balanceOf,
  createConfig,
  createMember,
  historyOf,
  ledgerReport,
  quotaSnapshot,
  sql,
} from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';
import { expectProblem, ISO_MS, metricValue } from '../auth/helpers';

const quotaOf = (id: string) => `/api/v1/quota/members/${id}`;

describe('consumption', () => {
  let t: TestApp;
  let service: { token: string; userId: string };
  let admin: { token: string; userId: string };
  let operator: string;

  beforeAll(async () => {
    t = await startTestApp({ env: { THROTTLE_LIMIT: '0' } });
    service = await loginAs(t, 'service');
    admin = await loginAs(t, 'admin');
    operator = (await loginAs(t, 'operator')).token;
  });
  afterAll(async () => {
    await t?.close();
  });

  it('reads a balance with max, period, next reset and the quota headers', async () => {
    const config = await createConfig(t, { maxQuota: 50, resetPeriod: 'daily' });
    const member = await createMember(t, { membershipType: config.membershipType });
    const res = await request(t.server).get(quotaOf(member.id)).set(bearer(service.token));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      data: {
        member_id: member.id,
        external_id: member.externalId,
        membership_type: config.membershipType,
        balance: 50,
        held: 0,
        max_quota: 50,
        reset_period: 'daily',
        period_started_at: expect.stringMatching(ISO_MS),
        next_reset_at: expect.stringMatching(ISO_MS),
        is_active: true,
        config_active: true,
      },
    });
    const nextReset = new Date(res.body.data.next_reset_at);
    expect(nextReset.getUTCHours()).toBe(0);
    expect(nextReset.getTime() - Date.now()).toBeGreaterThan(0);
    expect(nextReset.getTime() - Date.now()).toBeLessThanOrEqual(86_400_000);
    expect(res.headers['x-quota-limit']).toBe('50');
    expect(res.headers['x-quota-remaining']).toBe('50');
    expect(res.headers['x-quota-reset']).toBe(res.body.data.next_reset_at);

    const admins = await request(t.server).get(quotaOf(member.id)).set(bearer(admin.token));
    expect(admins.status).toBe(200);
    expectProblem(await request(t.server).get(quotaOf('987654321')).set(bearer(service.token)), 404, 'not_found');
  });

  it('consumes: 200 with the new balance, headers, one consumption row; refunds likewise', async () => {
    const member = await createMember(t, { maxQuota: 50 });
    const res = await request(t.server)
      .post(`${quotaOf(member.id)}/consume`)
      .set(bearer(service.token))
      .send({ amount: 5, note: 'export job 17' });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      data: { member_id: member.id, amount: 5, balance: 45, history_id: expect.stringMatching(/^\d+$/) },
    });
    expect(res.headers['x-quota-limit']).toBe('50');
    expect(res.headers['x-quota-remaining']).toBe('45');
    expect(res.headers['x-quota-reset']).toBeUndefined(); // reset_period none
    expect(res.headers['idempotent-replayed']).toBeUndefined();
    expect(await balanceOf(t, member.id)).toBe(45);

    const refund = await request(t.server)
      .post(`${quotaOf(member.id)}/refund`)
      .set(bearer(admin.token))
      .send({ amount: 2 });
    expect(refund.status).toBe(200);
    expect(refund.body.data).toEqual({
      member_id: member.id,
      amount: 2,
      balance: 47,
      history_id: expect.stringMatching(/^\d+$/),
    });
    expect(refund.headers['x-quota-remaining']).toBe('47');

    const history = await historyOf(t, member.id);
    expect(history.map((h) => [h.reason, h.delta, h.balance_after, h.actor, h.note])).toEqual([
      ['initial_grant', 50, 50, 'system', null],
      ['consumption', -5, 45, service.userId, 'export job 17'],
      ['refund', 2, 47, admin.userId, null],
    ]);
    expect(history[1].id).toBe(res.body.data.history_id);
    expect(await ledgerReport(t, member.id)).toEqual({ checked: 1, mismatches: [], held_mismatches: [] });
  });

  it('can consume the last unit, then refuses with 409 insufficient_quota and the balance', async () => {
    const member = await createMember(t, { maxQuota: 3 });
    const ok = await request(t.server)
      .post(`${quotaOf(member.id)}/consume`)
      .set(bearer(service.token))
      .send({ amount: 3 });
    expect(ok.body.data.balance).toBe(0);
    const before = await quotaSnapshot(t);
    const refused = await request(t.server)
      .post(`${quotaOf(member.id)}/consume`)
      .set(bearer(service.token))
      .send({ amount: 1 });
    expectProblem(refused, 409, 'insufficient_quota');
    expect(refused.body.balance).toBe(0);
    expect(refused.body.requested).toBe(1);
    expect(refused.headers['x-quota-remaining']).toBe('0');
    expect(refused.headers['x-quota-limit']).toBe('3');
    expect(await quotaSnapshot(t)).toEqual(before);
  });

  it('refuses an inactive member or an inactive config with a code saying why, changing nothing', async () => {
    const config = await createConfig(t);
    const member = await createMember(t, { membershipType: config.membershipType });
    await request(t.server)
      .patch(`/api/v1/admin/members/${member.id}`)
      .set(bearer(admin.token))
      .send({ is_active: false })
      .expect(200);
    let before = await quotaSnapshot(t);
    expectProblem(
      await request(t.server)
        .post(`${quotaOf(member.id)}/consume`)
        .set(bearer(service.token))
        .send({ amount: 1 }),
      409,
      'member_inactive',
    );
    expectProblem(
      await request(t.server)
        .post(`${quotaOf(member.id)}/refund`)
        .set(bearer(service.token))
        .send({ amount: 1 }),
      409,
      'member_inactive',
    );
    expect(await quotaSnapshot(t)).toEqual(before);

    const other = await createMember(t, { membershipType: config.membershipType });
    await request(t.server)
      .patch(`/api/v1/admin/quota/configs/${config.id}`)
      .set(bearer(admin.token))
      .send({ is_active: false })
      .expect(200);
    before = await quotaSnapshot(t);
    const refused = await request(t.server)
      .post(`${quotaOf(other.id)}/consume`)
      .set(bearer(service.token))
      .send({ amount: 1 });
    expectProblem(refused, 409, 'config_inactive');
    expect(refused.body.membership_type).toBe(config.membershipType);
    expect(await quotaSnapshot(t)).toEqual(before);
  });

  it('a consume or refund of an unknown member is 404 and changes nothing', async () => {
    const before = await quotaSnapshot(t);
    for (const action of ['consume', 'refund']) {
      expectProblem(
        await request(t.server)
          .post(`${quotaOf('987654321')}/${action}`)
          .set(bearer(service.token))
          .send({ amount: 1 }),
        404,
        'not_found',
      );
    }
    expect(await quotaSnapshot(t)).toEqual(before);
  });

  it('refuses a refund that would take the balance past 2^31-1', async () => {
    const member = await createMember(t, { maxQuota: 50, initialQuota: 2_147_483_000 });
    const before = await quotaSnapshot(t);
    const res = await request(t.server)
      .post(`${quotaOf(member.id)}/refund`)
      .set(bearer(service.token))
      .send({ amount: 1000 });
    expectProblem(res, 422, 'balance_out_of_range');
    expect(await quotaSnapshot(t)).toEqual(before);
  });

  it('counts consumptions by membership type and result', async () => {
    const member = await createMember(t, { maxQuota: 1 });
    const labels = { membership_type: member.membershipType };
    await request(t.server)
      .post(`${quotaOf(member.id)}/consume`)
      .set(bearer(service.token))
      .send({ amount: 1 })
      .expect(200);
    await request(t.server)
      .post(`${quotaOf(member.id)}/consume`)
      .set(bearer(service.token))
      .send({ amount: 1 })
      .expect(409);
    expect(await metricValue(t, 'quota_consumptions_total', { ...labels, result: 'success' })).toBe(1);
    expect(await metricValue(t, 'quota_consumptions_total', { ...labels, result: 'insufficient_quota' })).toBe(1);
  });

  describe('a member token', () => {
    it('reads and consumes its own quota through /me', async () => {
      const member = await createMember(t, { maxQuota: 10 });
      const self = await loginAs(t, 'member', { memberId: member.id });
      const me = await request(t.server).get('/api/v1/quota/me').set(bearer(self.token));
      expect(me.status).toBe(200);
      expect(me.body.data).toMatchObject({ member_id: member.id, balance: 10, max_quota: 10 });

      const used = await request(t.server).post('/api/v1/quota/me/consume').set(bearer(self.token)).send({ amount: 4 });
      expect(used.status).toBe(200);
      expect(used.body.data).toMatchObject({ member_id: member.id, amount: 4, balance: 6 });
      expect(used.headers['x-quota-remaining']).toBe('6');
      const history = await historyOf(t, member.id);
      expect(history[history.length - 1]).toMatchObject({ reason: 'consumption', delta: -4, actor: self.userId });

      // Its own id on the service path works too.
      const own = await request(t.server).get(quotaOf(member.id)).set(bearer(self.token));
      expect(own.status).toBe(200);
    });

    it("never reaches another member: 404 on another member's balance and consume, 403 on refund", async () => {
      const mine = await createMember(t);
      const theirs = await createMember(t);
      const self = await loginAs(t, 'member', { memberId: mine.id });
      const before = await quotaSnapshot(t);
      const read = await request(t.server).get(quotaOf(theirs.id)).set(bearer(self.token));
      expectProblem(read, 404, 'not_found');
      const unknown = await request(t.server).get(quotaOf('987654321')).set(bearer(self.token));
      // Another member's id and an id that does not exist look the same.
      expect({ ...read.body, request_id: null }).toEqual({ ...unknown.body, request_id: null });
      expectProblem(
        await request(t.server)
          .post(`${quotaOf(theirs.id)}/consume`)
          .set(bearer(self.token))
          .send({ amount: 1 }),
        404,
        'not_found',
      );
      expectProblem(
        await request(t.server)
          .post(`${quotaOf(mine.id)}/refund`)
          .set(bearer(self.token))
          .send({ amount: 1 }),
        403,
        'forbidden',
      );
      expect(await quotaSnapshot(t)).toEqual(before);
    });

    it('operators cannot consume; services cannot use /me', async () => {
      const member = await createMember(t);
      const before = await quotaSnapshot(t);
      expectProblem(
        await request(t.server)
          .post(`${quotaOf(member.id)}/consume`)
          .set(bearer(operator))
          .send({ amount: 1 }),
        403,
        'forbidden',
      );
      expectProblem(await request(t.server).get('/api/v1/quota/me').set(bearer(service.token)), 403, 'forbidden');
      expect(await quotaSnapshot(t)).toEqual(before);
    });
  });

  it('stores timestamps with milliseconds in UTC', async () => {
    const member = await createMember(t);
    const [row] = await sql<{ created_at: unknown }>(
      t,
      'SELECT created_at FROM member_quota_history WHERE member_id = ?',
      [member.id],
    );
    const created =
      row.created_at instanceof Date ? row.created_at : new Date(`${String(row.created_at).replace(' ', 'T')}Z`);
    expect(Math.abs(created.getTime() - Date.now())).toBeLessThan(60_000);
  });
});
