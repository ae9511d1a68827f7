import request from 'supertest';
import { bearer, createUser, loginAs, TEST_PASSWORD, type LoggedIn } from '../support/auth';
import { startTestApp, type TestApp } from '../support/test-app';
import { auditRowsFor, expectProblem, storedUser } from './helpers';

/** Tokens a user already holds stop working on the very next request after these changes. */
describe('token revocation', () => {
  let testApp: TestApp;
  let admin: LoggedIn;

  beforeAll(async () => {
    testApp = await startTestApp({ env: { THROTTLE_LIMIT: '0', THROTTLE_LOGIN_LIMIT: '0' } });
    admin = await loginAs(testApp, 'admin');
  });

  afterAll(async () => {
    await testApp?.close();
  });

  const me = (token: string) => request(testApp.server).get('/api/v1/auth/me').set(bearer(token));
  const patch = (id: string, body: object) =>
    request(testApp.server).patch(`/api/v1/admin/users/${id}`).set(bearer(admin.token)).send(body);
  const login = (email: string, password: string) =>
    request(testApp.server).post('/api/v1/auth/login').send({ email, password });

  /** A user holding a token obtained through the real login endpoint. */
  async function loggedInOperator() {
    const user = await createUser(testApp, { role: 'operator' });
    const res = await login(user.email, user.password);
    expect(res.status).toBe(200);
    const token = (res.body as { data: { access_token: string } }).data.access_token;
    expect((await me(token)).status).toBe(200);
    return { ...user, token };
  }

  it('disabling a user revokes its tokens at once, and enabling it again does not revive them', async () => {
    const user = await loggedInOperator();
    expect((await patch(user.userId, { is_active: false })).status).toBe(200);
    expectProblem(await me(user.token), 401, 'invalid_token');
    expect(await storedUser(testApp, user.userId)).toEqual(
      expect.objectContaining({ isActive: false, tokenVersion: 2 }),
    );

    expectProblem(await login(user.email, user.password), 401, 'invalid_credentials');

    expect((await patch(user.userId, { is_active: true })).status).toBe(200);
    expectProblem(await me(user.token), 401, 'invalid_token');
    const fresh = await login(user.email, user.password);
    expect(fresh.status).toBe(200);
    expect((await me((fresh.body as { data: { access_token: string } }).data.access_token)).status).toBe(200);

    const audit = await auditRowsFor(testApp, user.userId);
    expect(audit.map((row) => [row.action, row.beforeJson, row.afterJson])).toEqual([
      ['user.create', null, expect.any(String)],
      ['user.update', JSON.stringify({ is_active: true }), JSON.stringify({ is_active: false })],
      ['user.update', JSON.stringify({ is_active: false }), JSON.stringify({ is_active: true })],
    ]);
  });

  it('changing the role revokes the tokens issued under the old role', async () => {
    const user = await loggedInOperator();
    const res = await patch(user.userId, { role: 'service' });
    expect({ status: res.status, role: (res.body as { data: { role: string } }).data.role }).toEqual({
      status: 200,
      role: 'service',
    });
    expectProblem(await me(user.token), 401, 'invalid_token');
    expect(await storedUser(testApp, user.userId)).toEqual(
      expect.objectContaining({ role: 'service', tokenVersion: 2 }),
    );
    const fresh = await login(user.email, user.password);
    expect((fresh.body as { data: { user: { role: string } } }).data.user.role).toBe('service');
  });

  it('changing the password revokes existing tokens and the old password', async () => {
    const user = await loggedInOperator();
    const before = await storedUser(testApp, user.userId);
    const newPassword = 'a-brand-new-password-42';
    expect((await patch(user.userId, { password: newPassword })).status).toBe(200);
    expectProblem(await me(user.token), 401, 'invalid_token');
    expectProblem(await login(user.email, TEST_PASSWORD), 401, 'invalid_credentials');
    expect((await login(user.email, newPassword)).status).toBe(200);

    const after = await storedUser(testApp, user.userId);
    expect(after.tokenVersion).toBe(before.tokenVersion + 1);
    expect(after.passwordHash).not.toBe(before.passwordHash);
    expect(after.passwordChangedAt.getTime()).toBeGreaterThan(before.passwordChangedAt.getTime());
    const audit = (await auditRowsFor(testApp, user.userId)).at(-1)!;
    expect(audit.beforeJson).toBe(JSON.stringify({ password_changed_at: before.passwordChangedAt.toISOString() }));
    expect(audit.afterJson).toBe(JSON.stringify({ password_changed_at: after.passwordChangedAt.toISOString() }));
    expect(`${audit.beforeJson}${audit.afterJson}`).not.toContain('argon2');
    expect(`${audit.beforeJson}${audit.afterJson}`).not.toContain(newPassword);
  });

  it("refuses every request sent after the disable answered, while that user's requests keep arriving", async () => {
    // Concurrent requests of one user share the user lookup (FreshReads); none sent after the
    // change may ride on a lookup that started before it.
    const user = await loggedInOperator();
    if (!testApp.server.listening) {
      await new Promise<void>((resolve) => testApp.server.listen(0, '127.0.0.1', resolve));
    }
    const { port } = testApp.server.address() as { port: number };
    const routes = ['/api/v1/auth/me', '/api/v1/admin/quota/stats', '/api/v1/admin/quota/configs'];
    let disabledAt = Infinity;
    const outcomes: Array<{ sentAt: number; status: number }> = [];
    // Requests go out on a clock, not one after another's answer, so some are always in flight
    // (sharing a lookup) when the change lands.
    const inFlight = new Set<Promise<void>>();
    let sentAfterChange = 0;
    const send = (n: number) => {
      const sentAt = performance.now();
      if (sentAt > disabledAt) sentAfterChange++;
      const done = fetch(`http://127.0.0.1:${port}${routes[n % routes.length]}`, {
        headers: { authorization: `Bearer ${user.token}` },
      })
        .then(async (res) => {
          await res.arrayBuffer();
          outcomes.push({ sentAt, status: res.status });
        })
        .finally(() => inFlight.delete(done));
      inFlight.add(done);
    };
    const clock = (async () => {
      for (let n = 0; sentAfterChange < 150; n++) {
        if (inFlight.size < 32) send(n);
        await new Promise((r) => setTimeout(r, 1));
      }
      await Promise.all([...inFlight]);
    })();
    while (outcomes.filter((o) => o.status === 200).length < 30) await new Promise((r) => setTimeout(r, 5));
    expect((await patch(user.userId, { is_active: false })).status).toBe(200);
    disabledAt = performance.now();
    await clock;

    const after = outcomes.filter((o) => o.sentAt > disabledAt);
    expect(after.length).toBeGreaterThanOrEqual(150);
    expect(after.filter((o) => o.status !== 401)).toEqual([]);
    expect(outcomes.filter((o) => o.status !== 200 && o.status !== 401)).toEqual([]);
  });

  it('leaves the tokens of other users alone', async () => {
    const victim = await loggedInOperator();
    const bystander = await loggedInOperator();
    await patch(victim.userId, { is_active: false });
    expect((await me(bystander.token)).status).toBe(200);
    expect((await me(admin.token)).status).toBe(200);
  });
});
