import { Writable } from 'node:stream';
import pino from 'pino';
import request from 'supertest';
import { createApp } from '../../src/app.factory';
import { loadConfig } from '../../src/config/app-config';
import { bearer, createUser, loginAs, TEST_PASSWORD } from '../support/auth';
import { baseTestEnv, startTestApp, type TestApp } from '../support/test-app';
import { createTestDatabase } from '../support/test-database';
import { expectProblem, ISO_MS, metricValue, problemShape, sleep, storedUser, userStates } from './helpers';

/** Like startTestApp, but the service logs into `lines` so a test can read what was logged. */
async function startWithLogs(env: Record<string, string>): Promise<TestApp & { lines: string[] }> {
  const database = await createTestDatabase();
  const config = loadConfig({ ...baseTestEnv(database), ...env });
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const app = await createApp(config, pino({ level: 'info' }, sink));
  return {
    app,
    server: app.getHttpServer() as TestApp['server'],
    config,
    database,
    lines,
    close: async () => {
      await app.close();
      await database.drop();
    },
  };
}

const NO_RATE_LIMITS = { THROTTLE_LIMIT: '0', THROTTLE_LOGIN_LIMIT: '0' };

describe('POST /api/v1/auth/login', () => {
  let testApp: TestApp & { lines: string[] };

  beforeAll(async () => {
    // TRUST_PROXY=1 lets the tests play many client addresses through X-Forwarded-For.
    testApp = await startWithLogs({ ...NO_RATE_LIMITS, TRUST_PROXY: '1' });
  });

  afterAll(async () => {
    await testApp?.close();
  });

  const login = (body: object, ip = '198.51.100.1') =>
    request(testApp.server).post('/api/v1/auth/login').set('X-Forwarded-For', ip).send(body);

  it('answers 200 with a bearer token, its lifetime and the user; the token works', async () => {
    const user = await createUser(testApp, { role: 'service' });
    const res = await login({ email: user.email.toUpperCase(), password: user.password });
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toEqual({
      data: {
        access_token: expect.stringMatching(/^[\w-]+\.[\w-]+\.[\w-]+$/),
        token_type: 'Bearer',
        expires_in: 3600,
        user: {
          id: user.userId,
          email: user.email,
          role: 'service',
          member_id: null,
          is_active: true,
          created_at: expect.stringMatching(ISO_MS),
          updated_at: expect.stringMatching(ISO_MS),
        },
      },
    });
    const token = (res.body as { data: { access_token: string } }).data.access_token;
    const [, payload] = token.split('.');
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
    expect(claims).toEqual({
      sub: user.userId,
      ver: 1,
      iss: 'quota-service',
      aud: 'quota-service-api',
      iat: expect.any(Number),
      exp: (claims.iat as number) + 3600,
    });
    const me = await request(testApp.server).get('/api/v1/auth/me').set(bearer(token));
    expect({ status: me.status, body: me.body }).toEqual({
      status: 200,
      body: { data: (res.body as { data: { user: unknown } }).data.user },
    });
    expect((await storedUser(testApp, user.userId)).lastLoginAt).toBeInstanceOf(Date);
  });

  it('refuses query parameters on login and /auth/me (422), and logs nobody in', async () => {
    const user = await createUser(testApp, { role: 'service' });
    const refused = await request(testApp.server)
      .post('/api/v1/auth/login?remember=true')
      .set('X-Forwarded-For', '198.51.100.9')
      .send({ email: user.email, password: user.password });
    expectProblem(refused, 422, 'validation_failed');
    expect(refused.body.errors).toEqual([{ field: 'remember', message: 'property remember should not exist' }]);
    expect(refused.body.data).toBeUndefined();
    expect((await storedUser(testApp, user.userId)).lastLoginAt).toBeNull();
    const { token } = await loginAs(testApp, 'operator');
    expectProblem(
      await request(testApp.server).get('/api/v1/auth/me?verbose=1').set(bearer(token)),
      422,
      'validation_failed',
    );
  });

  it('gives the same 401 for an unknown email, a wrong password and a disabled account', async () => {
    const user = await createUser(testApp, { role: 'operator' });
    const disabled = await createUser(testApp, { role: 'operator' });
    const admin = await loginAs(testApp, 'admin');
    await request(testApp.server)
      .patch(`/api/v1/admin/users/${disabled.userId}`)
      .set(bearer(admin.token))
      .send({ is_active: false });

    const unknown = await login({ email: 'nobody@example.test', password: TEST_PASSWORD });
    const wrong = await login({ email: user.email, password: 'wrong-password-123' });
    const inactive = await login({ email: disabled.email, password: disabled.password });
    for (const res of [unknown, wrong, inactive]) expectProblem(res, 401, 'invalid_credentials');
    expect(problemShape(wrong)).toEqual(problemShape(unknown));
    expect(problemShape(inactive)).toEqual(problemShape(unknown));
    expect(wrong.headers['retry-after']).toBeUndefined();
    expect((await storedUser(testApp, user.userId)).failedLoginCount).toBe(1);
  });

  it('logs and counts failed logins, never with the password', async () => {
    const user = await createUser(testApp, { role: 'operator' });
    const unknownBefore = await metricValue(testApp, 'quota_failed_logins_total', { reason: 'unknown_email' });
    const wrongBefore = await metricValue(testApp, 'quota_failed_logins_total', { reason: 'wrong_password' });
    const secretAttempt = 'Guess-Number-One-7f3a';
    await login({ email: user.email, password: secretAttempt }, '198.51.100.77');
    await login({ email: 'ghost@example.test', password: secretAttempt }, '198.51.100.78');

    expect(await metricValue(testApp, 'quota_failed_logins_total', { reason: 'wrong_password' })).toBe(wrongBefore + 1);
    expect(await metricValue(testApp, 'quota_failed_logins_total', { reason: 'unknown_email' })).toBe(
      unknownBefore + 1,
    );
    const failures = testApp.lines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((entry) => entry.event === 'login_failed');
    expect(failures).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ reason: 'wrong_password', user_id: user.userId, ip: '198.51.100.77' }),
        expect.objectContaining({ reason: 'unknown_email', ip: '198.51.100.78' }),
      ]),
    );
    expect(testApp.lines.join('')).not.toContain(secretAttempt);
    expect(testApp.lines.join('')).not.toContain(TEST_PASSWORD);
  });

  it('locks the account after 5 failures from many addresses: 429 with Retry-After, even for the right password', async () => {
    const user = await createUser(testApp, { role: 'operator' });
    const lockoutsBefore = await metricValue(testApp, 'quota_account_lockouts_total');
    for (let i = 1; i <= 5; i++) {
      const res = await login({ email: user.email, password: `wrong-${i}` }, `203.0.113.${i}`);
      expectProblem(res, 401, 'invalid_credentials');
    }
    const stored = await storedUser(testApp, user.userId);
    expect(stored.lockedUntil).toBeInstanceOf(Date);
    const remaining = stored.lockedUntil!.getTime() - Date.now();
    expect(remaining).toBeGreaterThan(890_000);
    expect(remaining).toBeLessThanOrEqual(900_000);
    expect(await metricValue(testApp, 'quota_account_lockouts_total')).toBe(lockoutsBefore + 1);
    expect(testApp.lines.some((line) => line.includes('"event":"account_locked"'))).toBe(true);

    for (const ip of ['203.0.113.50', '192.0.2.9']) {
      const res = await login({ email: user.email, password: user.password }, ip);
      expectProblem(res, 429, 'account_locked');
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(890);
      expect(Number(res.headers['retry-after'])).toBeLessThanOrEqual(900);
    }
    // Refused attempts during the lock neither extend it nor count.
    expect((await storedUser(testApp, user.userId)).lockedUntil).toEqual(stored.lockedUntil);
  });

  it('counts failures that arrive at the same time', async () => {
    const user = await createUser(testApp, { role: 'operator' });
    const results = await Promise.all(
      [1, 2, 3, 4, 5].map((i) => login({ email: user.email, password: `parallel-${i}` }, `203.0.113.${100 + i}`)),
    );
    for (const res of results) expectProblem(res, 401, 'invalid_credentials');
    expect((await storedUser(testApp, user.userId)).lockedUntil).toBeInstanceOf(Date);
    expectProblem(await login({ email: user.email, password: user.password }), 429, 'account_locked');
  });

  it('forgets failures after a successful login', async () => {
    const user = await createUser(testApp, { role: 'operator' });
    for (let i = 0; i < 4; i++) await login({ email: user.email, password: 'nope-nope' });
    expect((await storedUser(testApp, user.userId)).failedLoginCount).toBe(4);
    expect((await login({ email: user.email, password: user.password })).status).toBe(200);
    expect(await storedUser(testApp, user.userId)).toEqual(
      expect.objectContaining({ failedLoginCount: 0, failedLoginWindowStartedAt: null, lockedUntil: null }),
    );
    for (let i = 0; i < 4; i++)
      expectProblem(await login({ email: user.email, password: 'nope' }), 401, 'invalid_credentials');
    expect((await login({ email: user.email, password: user.password })).status).toBe(200);
  });

  it('lets an admin unlock an account by setting a new password', async () => {
    const user = await createUser(testApp, { role: 'operator' });
    for (let i = 0; i < 5; i++) await login({ email: user.email, password: 'nope-nope' });
    expectProblem(await login({ email: user.email, password: user.password }), 429, 'account_locked');
    const admin = await loginAs(testApp, 'admin');
    const res = await request(testApp.server)
      .patch(`/api/v1/admin/users/${user.userId}`)
      .set(bearer(admin.token))
      .send({ password: 'the-reset-password-1' });
    expect(res.status).toBe(200);
    expect(await storedUser(testApp, user.userId)).toEqual(
      expect.objectContaining({ lockedUntil: null, failedLoginCount: 0 }),
    );
    expect((await login({ email: user.email, password: 'the-reset-password-1' })).status).toBe(200);
  });

  it.each([
    ['an empty body', {}, ['email', 'password']],
    ['a numeric email', { email: 5, password: 'x' }, ['email']],
    ['an array password', { email: 'a@example.test', password: ['x'] }, ['password']],
    ['an empty password', { email: 'a@example.test', password: '' }, ['password']],
    ['an oversized password', { email: 'a@example.test', password: 'x'.repeat(1025) }, ['password']],
    ['an unknown field', { email: 'a@example.test', password: 'x', remember_me: true }, ['remember_me']],
  ])('refuses %s with 422, counting no failure', async (_name, body, fields) => {
    const before = await userStates(testApp);
    const res = await login(body);
    expectProblem(res, 422, 'validation_failed');
    expect([...new Set((res.body as { errors: Array<{ field: string }> }).errors.map((e) => e.field))].sort()).toEqual(
      [...fields].sort(),
    );
    expect(await userStates(testApp)).toEqual(before);
  });
});

describe('login lockout timing settings', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await startTestApp({
      env: { ...NO_RATE_LIMITS, LOGIN_MAX_FAILURES: '3', LOGIN_FAILURE_WINDOW: '2s', LOGIN_LOCK_DURATION: '2s' },
    });
  });

  afterAll(async () => {
    await testApp?.close();
  });

  const login = (body: object) => request(testApp.server).post('/api/v1/auth/login').send(body);

  it('starts counting again once the failure window has passed', async () => {
    const user = await createUser(testApp, { role: 'operator' });
    for (let i = 0; i < 2; i++) await login({ email: user.email, password: 'nope-nope' });
    await sleep(2100);
    for (let i = 0; i < 2; i++)
      expectProblem(await login({ email: user.email, password: 'nope-nope' }), 401, 'invalid_credentials');
    expect(await storedUser(testApp, user.userId)).toEqual(
      expect.objectContaining({ failedLoginCount: 2, lockedUntil: null }),
    );
    expect((await login({ email: user.email, password: user.password })).status).toBe(200);
  });

  it('unlocks by itself after LOGIN_LOCK_DURATION', async () => {
    const user = await createUser(testApp, { role: 'operator' });
    for (let i = 0; i < 3; i++) await login({ email: user.email, password: 'nope-nope' });
    const locked = await login({ email: user.email, password: user.password });
    expectProblem(locked, 429, 'account_locked');
    expect(Number(locked.headers['retry-after'])).toBeLessThanOrEqual(2);
    await sleep(2100);
    expect((await login({ email: user.email, password: user.password })).status).toBe(200);
    expect(await storedUser(testApp, user.userId)).toEqual(
      expect.objectContaining({ lockedUntil: null, failedLoginCount: 0 }),
    );
  });
});

describe('login timing', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await startTestApp({ env: { ...NO_RATE_LIMITS, LOGIN_MAX_FAILURES: '1000' } });
  });

  afterAll(async () => {
    await testApp?.close();
  });

  async function elapsed(body: object): Promise<number> {
    const started = process.hrtime.bigint();
    const res = await request(testApp.server).post('/api/v1/auth/login').send(body);
    expect(res.status).toBe(401);
    return Number(process.hrtime.bigint() - started) / 1e6;
  }

  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

  it('spends about as long on an unknown email as on a wrong password (the hash is checked either way)', async () => {
    const user = await createUser(testApp, { role: 'operator' });
    await elapsed({ email: 'warm-up@example.test', password: 'x' });
    const unknown: number[] = [];
    const wrong: number[] = [];
    for (let i = 0; i < 7; i++) {
      unknown.push(await elapsed({ email: `nobody-${i}@example.test`, password: 'wrong-password' }));
      wrong.push(await elapsed({ email: user.email, password: 'wrong-password' }));
    }
    const ratio = median(unknown) / median(wrong);
    // Loose bounds: a missing dummy verification would make unknown emails several times faster.
    expect(ratio).toBeGreaterThan(0.6);
    expect(ratio).toBeLessThan(1.6);
    expect(median(unknown)).toBeGreaterThan(10);
  });
});
