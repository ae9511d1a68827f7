import { createHmac } from 'node:crypto';
import request from 'supertest';
import { JWT_AUDIENCE, JWT_ISSUER } from '../../src/auth/token.service';
import { bearer, loginAs } from '../support/auth';
import { startTestApp, TEST_JWT_SECRET, type TestApp } from '../support/test-app';
import { expectProblem, sleep } from './helpers';

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

function hmacToken(payload: object): string {
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(payload)}`;
  return `${input}.${createHmac('sha256', TEST_JWT_SECRET).update(input).digest('base64url')}`;
}

/** A token seen once is remembered as verified; these check that nothing else is remembered with it. */
describe('tokens already verified once', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await startTestApp({ env: { THROTTLE_LIMIT: '0' } });
  });
  afterAll(async () => {
    await testApp.close();
  });

  it('stop working when they expire, though their signature was accepted before', async () => {
    const { userId } = await loginAs(testApp, 'operator');
    const now = Math.floor(Date.now() / 1000);
    const token = hmacToken({ sub: userId, ver: 1, iss: JWT_ISSUER, aud: JWT_AUDIENCE, iat: now, exp: now + 2 });

    const first = await request(testApp.server).get('/api/v1/auth/me').set(bearer(token)).expect(200);
    expect(first.body.data.id).toBe(userId);
    await request(testApp.server).get('/api/v1/auth/me').set(bearer(token)).expect(200);

    await sleep(2100);
    expectProblem(await request(testApp.server).get('/api/v1/auth/me').set(bearer(token)), 401, 'invalid_token');
  });

  it('still see a disabled user on the next request', async () => {
    const admin = await loginAs(testApp, 'admin');
    const operator = await loginAs(testApp, 'operator');
    await request(testApp.server).get('/api/v1/auth/me').set(bearer(operator.token)).expect(200);

    await request(testApp.server)
      .patch(`/api/v1/admin/users/${operator.userId}`)
      .set(bearer(admin.token))
      .send({ is_active: false })
      .expect(200);
    expectProblem(
      await request(testApp.server).get('/api/v1/auth/me').set(bearer(operator.token)),
      401,
      'invalid_token',
    );
  });

  it('do not let a tampered copy through: a changed signature is verified afresh and refused', async () => {
    const { token } = await loginAs(testApp, 'operator');
    await request(testApp.server).get('/api/v1/auth/me').set(bearer(token)).expect(200);
    const [header, payload, signature] = token.split('.');
    const tampered = `${header}.${payload}.${signature.slice(0, -2)}${signature.endsWith('AA') ? 'BB' : 'AA'}`;
    expectProblem(await request(testApp.server).get('/api/v1/auth/me').set(bearer(tampered)), 401, 'invalid_token');
  });
});
