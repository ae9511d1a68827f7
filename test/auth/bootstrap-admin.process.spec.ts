import request from 'supertest';
import { AuditLogEntry } from '../../src/audit/audit-log.entity';
import { User } from '../../src/auth/user.entity';
import { createUser } from '../support/auth';
import { freePort, spawnService, waitForOutput, waitUntilReady, type ServiceProcess } from '../support/service-process';
import { baseTestEnv, startTestApp, type TestApp } from '../support/test-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { dataSourceOf, storedUser } from './helpers';

const ADMIN = { ADMIN_EMAIL: 'Ops.Admin@Example.test', ADMIN_PASSWORD: 'bootstrap-password-1' };
const NO_RATE_LIMITS = { THROTTLE_LIMIT: '0', THROTTLE_LOGIN_LIMIT: '0' };

describe('ADMIN_EMAIL + ADMIN_PASSWORD bootstrap', () => {
  let database: TestDatabase;
  const apps: TestApp[] = [];

  beforeEach(async () => {
    database = await createTestDatabase();
  });

  afterEach(async () => {
    for (const testApp of apps.splice(0)) await testApp.close();
    await database.drop();
  });

  async function start(env: Record<string, string>): Promise<TestApp> {
    const testApp = await startTestApp({ database, env: { ...NO_RATE_LIMITS, ...env } });
    apps.push(testApp);
    return testApp;
  }

  const admins = (testApp: TestApp) =>
    dataSourceOf(testApp)
      .getRepository(User)
      .find({ where: { role: 'admin' } });

  it('creates that admin at start-up when no admin exists; it can log in; the audit log names the system', async () => {
    const testApp = await start(ADMIN);
    const [admin, ...others] = await admins(testApp);
    expect(others).toEqual([]);
    expect(admin).toEqual(expect.objectContaining({ email: 'ops.admin@example.test', role: 'admin', isActive: true }));
    expect((await storedUser(testApp, admin.id)).passwordHash).toMatch(/^\$argon2id\$/);
    const audit = await dataSourceOf(testApp)
      .getRepository(AuditLogEntry)
      .findBy({ entityId: String(admin.id) });
    expect(audit).toEqual([
      expect.objectContaining({ action: 'user.create', actorUserId: null, actorLabel: 'system', requestId: null }),
    ]);

    const res = await request(testApp.server)
      .post('/api/v1/auth/login')
      .send({ email: ADMIN.ADMIN_EMAIL, password: ADMIN.ADMIN_PASSWORD });
    expect(res.status).toBe(200);
    expect((res.body as { data: { user: { role: string } } }).data.user.role).toBe('admin');
  });

  it('does nothing on later starts: a second admin is not created and the password is not reset', async () => {
    const firstStart = await start(ADMIN);
    const [admin] = await admins(firstStart);
    const hash = (await storedUser(firstStart, admin.id)).passwordHash;
    await firstStart.close();
    apps.splice(0);

    const again = await start({ ADMIN_EMAIL: ADMIN.ADMIN_EMAIL, ADMIN_PASSWORD: 'another-password-22' });
    expect((await storedUser(again, admin.id)).passwordHash).toBe(hash);
    const other = await start({ ADMIN_EMAIL: 'second.admin@example.test', ADMIN_PASSWORD: 'another-password-22' });
    expect((await admins(other)).map((a) => a.email)).toEqual(['ops.admin@example.test']);
    expect(await dataSourceOf(other).getRepository(AuditLogEntry).count()).toBe(1);
  });

  it('does not take over an existing non-admin account that has the same email', async () => {
    const plain = await start({});
    const user = await createUser(plain, { role: 'operator', email: 'ops.admin@example.test' });
    await plain.close();
    apps.splice(0);

    const testApp = await start(ADMIN);
    expect(await admins(testApp)).toEqual([]);
    expect(await storedUser(testApp, user.userId)).toEqual(expect.objectContaining({ role: 'operator' }));
  });
});

describe('bootstrap admin in the built service', () => {
  let database: TestDatabase;
  let service: ServiceProcess | undefined;

  beforeAll(async () => {
    database = await createTestDatabase();
  });

  afterAll(async () => {
    if (service && service.child.exitCode === null) {
      service.child.kill('SIGTERM');
      await service.exited();
    }
    await database.drop();
  });

  it('starts with ADMIN_EMAIL / ADMIN_PASSWORD and that admin can log in at once', async () => {
    const port = await freePort();
    service = spawnService({
      ...baseTestEnv(database),
      ...ADMIN,
      LOG_LEVEL: 'info',
      PORT: String(port),
      HOST: '127.0.0.1',
    });
    await waitUntilReady(service);
    const res = await fetch(`${service.baseUrl}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email: ADMIN.ADMIN_EMAIL, password: ADMIN.ADMIN_PASSWORD }),
    });
    const body = (await res.json()) as { data: { user: { email: string; role: string } } };
    expect({ status: res.status, user: body.data.user }).toEqual({
      status: 200,
      user: expect.objectContaining({ email: 'ops.admin@example.test', role: 'admin' }),
    });
    await waitForOutput(service, 'bootstrap admin created');
    expect(service.output()).not.toContain(ADMIN.ADMIN_PASSWORD);
    expect(service.output()).not.toContain('No admin user exists yet');
  });
});
