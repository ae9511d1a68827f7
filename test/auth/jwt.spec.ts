import { createHmac, createSign, generateKeyPairSync } from 'node:crypto';
import request from 'supertest';
import { JWT_AUDIENCE, JWT_ISSUER } from '../../src/auth/token.service';
import { bearer, loginAs } from '../support/auth';
import { startTestApp, TEST_JWT_SECRET, type TestApp } from '../support/test-app';
import { expectProblem, problemShape, userStates } from './helpers';

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

function hmacToken(header: object, payload: object, secret = TEST_JWT_SECRET, digest = 'sha256'): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${createHmac(digest, secret).update(input).digest('base64url')}`;
}

const now = () => Math.floor(Date.now() / 1000);

describe('JWT validation', () => {
  let testApp: TestApp;
  let userId: string;
  let adminId: string;

  const claims = (overrides: Record<string, unknown> = {}) => {
    const base: Record<string, unknown> = {
      sub: userId,
      ver: 1,
      iss: JWT_ISSUER,
      aud: JWT_AUDIENCE,
      iat: now(),
      exp: now() + 300,
      ...overrides,
    };
    for (const [key, value] of Object.entries(base)) if (value === undefined) delete base[key];
    return base;
  };
  const HS256 = { alg: 'HS256', typ: 'JWT' };

  beforeAll(async () => {
    testApp = await startTestApp({ env: { THROTTLE_LIMIT: '0' } });
    userId = (await loginAs(testApp, 'operator')).userId;
    adminId = (await loginAs(testApp, 'admin')).userId;
  });

  afterAll(async () => {
    await testApp?.close();
  });

  const me = (authorization?: string) => {
    const req = request(testApp.server).get('/api/v1/auth/me');
    return authorization === undefined ? req : req.set('Authorization', authorization);
  };

  it('accepts a token crafted exactly like the service signs them (the control case)', async () => {
    const res = await me(`Bearer ${hmacToken(HS256, claims())}`);
    expect(res.status).toBe(200);
    expect(res.body.data).toEqual(expect.objectContaining({ id: userId, role: 'operator' }));
  });

  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const rs256 = () => {
    const input = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64(claims())}`;
    return `${input}.${createSign('RSA-SHA256').update(input).sign(privateKey).toString('base64url')}`;
  };

  const attacks: Array<[string, () => string]> = [
    ['alg none, no signature', () => `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims())}.`],
    ['alg NONE, no signature', () => `${b64({ alg: 'NONE', typ: 'JWT' })}.${b64(claims())}.`],
    [
      'alg none with the HS256 signature kept',
      () => {
        const [, payload, signature] = hmacToken(HS256, claims()).split('.');
        return `${b64({ alg: 'none', typ: 'JWT' })}.${payload}.${signature}`;
      },
    ],
    ['a foreign signature (another secret)', () => hmacToken(HS256, claims(), 'someone-elses-secret-0123456789abcdef')],
    [
      'HS512 with the right secret (algorithm not pinned to HS256)',
      () => hmacToken({ alg: 'HS512', typ: 'JWT' }, claims(), TEST_JWT_SECRET, 'sha512'),
    ],
    ['RS256 with a key of its own', rs256],
    ['no exp', () => hmacToken(HS256, claims({ exp: undefined }))],
    ['an exp in the past', () => hmacToken(HS256, claims({ iat: now() - 600, exp: now() - 60 }))],
    ['a non-numeric exp', () => hmacToken(HS256, claims({ exp: 'tomorrow' }))],
    ['a wrong issuer', () => hmacToken(HS256, claims({ iss: 'https://evil.example' }))],
    ['no issuer', () => hmacToken(HS256, claims({ iss: undefined }))],
    ['a wrong audience', () => hmacToken(HS256, claims({ aud: 'another-service' }))],
    ['no audience', () => hmacToken(HS256, claims({ aud: undefined }))],
    [
      'a payload changed after signing (sub swapped to an admin)',
      () => {
        const [header, , signature] = hmacToken(HS256, claims()).split('.');
        return `${header}.${b64(claims({ sub: adminId }))}.${signature}`;
      },
    ],
    ['an unknown user', () => hmacToken(HS256, claims({ sub: '987654321' }))],
    ['a non-numeric sub', () => hmacToken(HS256, claims({ sub: 'admin' }))],
    ['no sub', () => hmacToken(HS256, claims({ sub: undefined }))],
    ['an old token version', () => hmacToken(HS256, claims({ ver: 0 }))],
    ['a token version as a string', () => hmacToken(HS256, claims({ ver: '1' }))],
    ['no token version', () => hmacToken(HS256, claims({ ver: undefined }))],
    ['a not-yet-valid token (nbf in the future)', () => hmacToken(HS256, claims({ nbf: now() + 600 }))],
    ['garbage', () => 'not.a.jwt'],
    ['an empty signature', () => `${b64(HS256)}.${b64(claims())}.`],
  ];

  it.each(attacks)('refuses %s with the same 401 invalid_token', async (_name, craft) => {
    const before = await userStates(testApp);
    const reference = await me('Bearer not.a.jwt');
    const res = await me(`Bearer ${craft()}`);
    expectProblem(res, 401, 'invalid_token');
    expect(problemShape(res)).toEqual(problemShape(reference));
    expect(await userStates(testApp)).toEqual(before);
  });

  it.each([
    ['no Authorization header', undefined, 'unauthorized'],
    ['an empty Bearer', 'Bearer ', 'invalid_token'],
    ['another scheme', `Basic ${Buffer.from('a:b').toString('base64')}`, 'invalid_token'],
    ['a token without the Bearer scheme', 'TOKEN', 'invalid_token'],
  ])('refuses %s with 401', async (_name, authorization, code) => {
    const res = await me(
      authorization === undefined ? undefined : authorization === 'TOKEN' ? hmacToken(HS256, claims()) : authorization,
    );
    expectProblem(res, 401, code);
  });

  it('ignores a token on a public route instead of refusing it', async () => {
    const res = await request(testApp.server).get('/api/v1/health/live').set(bearer('not.a.jwt'));
    expect(res.status).toBe(200);
  });
});
