import request from 'supertest';
import { bearer, loginAs } from '../support/auth';
import { balanceOf, createMember, historyOf, ledgerReport, sql } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';

describe('holds', () => {
  let t: TestApp;
  let service: string;

  beforeAll(async () => {
    t = await startTestApp({ env: { THROTTLE_LIMIT: '0' } });
    service = (await loginAs(t, 'service')).token;
  });
  afterAll(async () => {
    await t?.close();
  });

  it('a hold takes the units at once; a commit consumes part and gives the rest back', async () => {
    const member = await createMember(t, { maxQuota: 50 });
    const made = await request(t.server)
      .post(`/api/v1/quota/members/${member.id}/holds`)
      .set(bearer(service))
      .send({ amount: 30 });
    expect(made.status).toBe(201);
    expect(made.body.data).toMatchObject({ member_id: member.id, amount: 30, status: 'held', balance: 20 });
    expect(made.headers['x-quota-remaining']).toBe('20');
    expect(await balanceOf(t, member.id)).toBe(20);

    const refused = await request(t.server)
      .post(`/api/v1/quota/members/${member.id}/consume`)
      .set(bearer(service))
      .send({ amount: 21 });
    expect(refused.status).toBe(409);

    const committed = await request(t.server)
      .post(`/api/v1/quota/holds/${made.body.data.hold_id}/commit`)
      .set(bearer(service))
      .send({ amount: 12 });
    expect(committed.status).toBe(200);
    expect(committed.body.data).toMatchObject({
      status: 'committed',
      committed_amount: 12,
      released_amount: 18,
      balance: 38,
    });
    expect(await balanceOf(t, member.id)).toBe(38);
    const rows = await historyOf(t, member.id);
    expect(rows.map((r) => [r.reason, r.delta])).toEqual([
      ['initial_grant', 50],
      ['hold', -30],
      ['hold_release', 30],
      ['consumption', -12],
    ]);
    const [held] = await sql<{ quota_held: number }>(t, 'SELECT quota_held FROM members WHERE id = ?', [member.id]);
    expect(Number(held.quota_held)).toBe(0);
    expect((await ledgerReport(t, member.id)).mismatches).toEqual([]);

    const again = await request(t.server)
      .post(`/api/v1/quota/holds/${made.body.data.hold_id}/release`)
      .set(bearer(service));
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('hold_settled');
  });

  it('an unsettled hold comes back by itself after its ttl', async () => {
    const member = await createMember(t, { maxQuota: 10 });
    const made = await request(t.server)
      .post(`/api/v1/quota/members/${member.id}/holds`)
      .set(bearer(service))
      .send({ amount: 4, ttl_seconds: 1 });
    expect(made.status).toBe(201);
    await new Promise((r) => setTimeout(r, 2600));
    expect(await balanceOf(t, member.id)).toBe(10);
    const read = await request(t.server).get(`/api/v1/quota/holds/${made.body.data.hold_id}`).set(bearer(service));
    expect(read.body.data).toMatchObject({ status: 'expired', released_amount: 4, committed_amount: 0 });
    const late = await request(t.server)
      .post(`/api/v1/quota/holds/${made.body.data.hold_id}/commit`)
      .set(bearer(service))
      .send({});
    expect(late.status).toBe(409);
    expect(late.body.code).toBe('hold_expired');
  });
});
