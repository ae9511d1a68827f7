import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { bearer, loginAs, type LoggedIn } from '../support/auth';
import { balanceOf, createMember, quotaSnapshot } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';
import { expectProblem } from '../auth/helpers';

/**
 * Consume and refund check a known token's user inside their own transaction rather than with a
 * lookup before they run. Revocation must still take effect on the very next request, whatever
 * that request would otherwise have been told, and must change nothing.
 */
describe('the caller check inside the consume and refund transaction', () => {
  let t: TestApp;
  let admin: string;

  beforeAll(async () => {
    t = await startTestApp({ env: { THROTTLE_LIMIT: '0' } });
    admin = (await loginAs(t, 'admin')).token;
  });
  afterAll(async () => {
    await t?.close();
  });

  const consume = (token: string, memberId: string, body: object, key?: string) => {
    const req = request(t.server).post(`/api/v1/quota/members/${memberId}/consume`).set(bearer(token));
    return (key ? req.set('Idempotency-Key', key) : req).send(body);
  };
  const refund = (token: string, memberId: string, body: object) =>
    request(t.server).post(`/api/v1/quota/members/${memberId}/refund`).set(bearer(token)).send(body);
  const patchUser = (userId: string, body: object) =>
    request(t.server).patch(`/api/v1/admin/users/${userId}`).set(bearer(admin)).send(body).expect(200);

  /** A service user whose token has been used once, so the next requests take the in-transaction check. */
  async function knownService(): Promise<LoggedIn & { memberId: string }> {
    const user = await loginAs(t, 'service');
    const member = await createMember(t, { maxQuota: 10 });
    await consume(user.token, member.id, { amount: 1 }).expect(200);
    await consume(user.token, member.id, { amount: 1 }).expect(200);
    return { ...user, memberId: member.id };
  }

  it('a disabled user is refused at once with 401, and nothing changes', async () => {
    const caller = await knownService();
    const key = randomUUID();
    await patchUser(caller.userId, { is_active: false });
    const before = await quotaSnapshot(t);

    expectProblem(await consume(caller.token, caller.memberId, { amount: 1 }, key), 401, 'invalid_token');
    expectProblem(await refund(caller.token, caller.memberId, { amount: 1 }), 401, 'invalid_token');
    // Refused again: the failed check is not remembered as a pass.
    expectProblem(await consume(caller.token, caller.memberId, { amount: 1 }), 401, 'invalid_token');
    expect(await quotaSnapshot(t)).toEqual(before);
    expect(await balanceOf(t, caller.memberId)).toBe(8);
  });

  it('making a hold checks the caller in its own transaction too: a disabled user gets 401 and nothing is held', async () => {
    const caller = await knownService();
    const hold = (body: object) =>
      request(t.server).post(`/api/v1/quota/members/${caller.memberId}/holds`).set(bearer(caller.token)).send(body);
    await hold({ amount: 1 }).expect(201);
    await patchUser(caller.userId, { is_active: false });
    const before = await quotaSnapshot(t);
    expectProblem(await hold({ amount: 1 }), 401, 'invalid_token');
    // What the request would otherwise have been told (insufficient_quota) is not said either.
    expectProblem(await hold({ amount: 1000 }), 401, 'invalid_token');
    expect(await quotaSnapshot(t)).toEqual(before);
    expect(await balanceOf(t, caller.memberId)).toBe(7);
  });

  it('says 401 rather than what the request would otherwise have been told', async () => {
    const caller = await knownService();
    const replayKey = randomUUID();
    await consume(caller.token, caller.memberId, { amount: 1 }, replayKey).expect(200);
    await patchUser(caller.userId, { is_active: false });
    const before = await quotaSnapshot(t);

    const refusals = [
      await consume(caller.token, caller.memberId, { amount: 1000 }), // would be 409 insufficient_quota
      await consume(caller.token, '999999999', { amount: 1 }), // would be 404
      await consume(caller.token, caller.memberId, { amount: -1 }), // would be 422
      await consume(caller.token, caller.memberId, { amount: 1 }, replayKey), // would be a replay
      await consume(caller.token, caller.memberId, { amount: 2 }, replayKey), // would be 422 mismatch
    ];
    for (const res of refusals) expectProblem(res, 401, 'invalid_token');
    expect(await quotaSnapshot(t)).toEqual(before);
  });

  it('a role change revokes the token for consume too; a member token also loses refund with 401, not 403', async () => {
    const caller = await knownService();
    await patchUser(caller.userId, { role: 'operator' });
    expectProblem(await consume(caller.token, caller.memberId, { amount: 1 }), 401, 'invalid_token');

    const member = await loginAs(t, 'member');
    const own = (token: string) =>
      request(t.server).post('/api/v1/quota/me/consume').set(bearer(token)).send({ amount: 1 });
    // The member's own member has no quota: 409 both times, the second through the in-transaction check.
    expectProblem(await own(member.token), 409, 'insufficient_quota');
    expectProblem(await own(member.token), 409, 'insufficient_quota');
    expectProblem(await refund(member.token, member.memberId!, { amount: 1 }), 403, 'forbidden');
    await patchUser(member.userId, { is_active: false });
    expectProblem(await refund(member.token, member.memberId!, { amount: 1 }), 401, 'invalid_token');
    expectProblem(await own(member.token), 401, 'invalid_token');
  });

  it('a token that still holds keeps working, and a new token after re-enabling works', async () => {
    const caller = await knownService();
    const ok = await consume(caller.token, caller.memberId, { amount: 3 });
    expect(ok.status).toBe(200);
    expect(ok.body.data.balance).toBe(5);
    await patchUser(caller.userId, { is_active: false });
    await patchUser(caller.userId, { is_active: true });
    expectProblem(await consume(caller.token, caller.memberId, { amount: 1 }), 401, 'invalid_token');
    const fresh = (await loginAs(t, 'service')).token;
    expect((await consume(fresh, caller.memberId, { amount: 1 })).body.data.balance).toBe(4);
    expect(await balanceOf(t, caller.memberId)).toBe(4);
  });
});
