import request from 'supertest';
import { bearer, loginAs } from '../support/auth';
import { createConfig, createMember, quotaSnapshot } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';
import { expectProblem } from '../auth/helpers';
import { BULK, OPERATIONS, seedMembers } from '../jobs/helpers';

const CONTENT_TYPES = ['application/json', 'application/json; charset=utf-8', 'text/plain', 'application/xml'];

/**
 * Endpoints that take no body accept an empty one whatever its Content-Type (contract §1): many
 * clients send `Content-Type: application/json` on every call.
 */
describe('empty bodies on endpoints that take none', () => {
  let t: TestApp;
  let admin: string;

  beforeAll(async () => {
    // The in-process worker is kept from starting operations, so the cancel below finds one queued.
    t = await startTestApp({ env: { THROTTLE_LIMIT: '0', APP_ROLE: 'api' } });
    admin = (await loginAs(t, 'admin')).token;
  });
  afterAll(async () => {
    await t?.close();
  });

  it.each(CONTENT_TYPES)('DELETE a config with Content-Type %s and no body: 204', async (type) => {
    const config = await createConfig(t);
    const res = await request(t.server)
      .delete(`/api/v1/admin/quota/configs/${config.id}`)
      .set(bearer(admin))
      .set('Content-Type', type);
    expect(res.status).toBe(204);
    await request(t.server).get(`/api/v1/admin/quota/configs/${config.id}`).set(bearer(admin)).expect(404);
  });

  it.each(CONTENT_TYPES)('cancel an operation with Content-Type %s and no body: 202 cancelled', async (type) => {
    const { membershipType } = await seedMembers(t, 3);
    const accepted = await request(t.server)
      .post(BULK)
      .set(bearer(admin))
      .send({ membership_type: membershipType, delta: 1 });
    expect(accepted.status).toBe(202);
    const res = await request(t.server)
      .post(`${OPERATIONS}/${accepted.body.data.operation_id}/cancel`)
      .set(bearer(admin))
      .set('Content-Type', type);
    expect(res.status).toBe(202);
    expect(res.body.data).toMatchObject({ status: 'cancelled', cancel_requested: true });
  });

  it.each(CONTENT_TYPES)('commit and release a hold with Content-Type %s and no body: 200', async (type) => {
    const member = await createMember(t, { maxQuota: 10 });
    const made = async () =>
      (
        await request(t.server)
          .post(`/api/v1/quota/members/${member.id}/holds`)
          .set(bearer(admin))
          .send({ amount: 2 })
          .expect(201)
      ).body.data.hold_id as string;
    const commit = await request(t.server)
      .post(`/api/v1/quota/holds/${await made()}/commit`)
      .set(bearer(admin))
      .set('Content-Type', type);
    expect(commit.status).toBe(200);
    expect(commit.body.data).toMatchObject({ status: 'committed', committed_amount: 2, balance: 8 });
    const release = await request(t.server)
      .post(`/api/v1/quota/holds/${await made()}/release`)
      .set(bearer(admin))
      .set('Content-Type', type);
    expect(release.status).toBe(200);
    expect(release.body.data).toMatchObject({ status: 'released', released_amount: 2, balance: 8 });
  });

  it('GET with Content-Type: application/json and no body answers as usual', async () => {
    const member = await createMember(t);
    const res = await request(t.server)
      .get(`/api/v1/admin/members/${member.id}`)
      .set(bearer(admin))
      .set('Content-Type', 'application/json');
    expect(res.status).toBe(200);
    expect(res.body.data.id).toBe(member.id);
  });

  it('a route that takes a body still refuses an empty one (400 malformed_json), changing nothing', async () => {
    const member = await createMember(t);
    const before = await quotaSnapshot(t);
    for (const path of [`/api/v1/admin/quota/members/${member.id}/adjust`, '/api/v1/admin/quota/configs']) {
      expectProblem(
        await request(t.server).post(path).set(bearer(admin)).set('Content-Type', 'application/json'),
        400,
        'malformed_json',
      );
    }
    expect(await quotaSnapshot(t)).toEqual(before);
  });

  it('a body that is present is still parsed on a bodyless route: malformed JSON 400, other types 415', async () => {
    const config = await createConfig(t);
    expectProblem(
      await request(t.server)
        .delete(`/api/v1/admin/quota/configs/${config.id}`)
        .set(bearer(admin))
        .set('Content-Type', 'application/json')
        .send('{"oops":'),
      400,
      'malformed_json',
    );
    expectProblem(
      await request(t.server)
        .delete(`/api/v1/admin/quota/configs/${config.id}`)
        .set(bearer(admin))
        .set('Content-Type', 'application/xml')
        .send('<oops/>'),
      415,
      'unsupported_media_type',
    );
    await request(t.server).get(`/api/v1/admin/quota/configs/${config.id}`).set(bearer(admin)).expect(200);
  });
});
