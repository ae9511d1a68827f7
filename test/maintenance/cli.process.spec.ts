import { existsSync } from 'node:fs';
import { AuditLogEntry } from '../../src/audit/audit-log.entity';
import { dataSourceOf } from '../auth/helpers';
import {
  BUILT_CLI,
  freePort,
  runCli,
  spawnService,
  waitFor,
  waitUntilReady,
  type ServiceProcess,
} from '../support/service-process';
import { baseTestEnv, startTestApp } from '../support/test-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';

const ADMIN = { email: 'freeze.admin@example.test', password: 'freeze-admin-password-1' };

/** The CLI flips the switch straight in the database: no API instance needs to run. */
describe('npm run cli -- maintenance:on / maintenance:off', () => {
  let database: TestDatabase;
  let env: Record<string, string>;
  let service: ServiceProcess | undefined;

  beforeAll(async () => {
    expect(existsSync(BUILT_CLI)).toBe(true);
    database = await createTestDatabase();
    env = { ...baseTestEnv(database), THROTTLE_LIMIT: '0', THROTTLE_LOGIN_LIMIT: '0' };
  });

  afterAll(async () => {
    if (service && service.child.exitCode === null) {
      service.child.kill('SIGTERM');
      await service.exited();
    }
    await database?.drop();
  });

  async function api(method: string, path: string, token?: string, body?: unknown) {
    const res = await fetch(`${service!.baseUrl}${path}`, {
      method,
      headers: {
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
        ...(token ? { Authorization: `Bearer ${token}` } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, any> };
  }

  it('freezes with no API running; an instance started afterwards refuses writes; off lets them through', async () => {
    // The first admin, before the freeze (the CLI applies migrations where the service would).
    const created = await runCli(
      env,
      ['user:create', '--email', ADMIN.email, '--role', 'admin'],
      `${ADMIN.password}\n`,
    );
    expect(created.code).toBe(0);

    const on = await runCli(env, ['maintenance:on', '--reason', 'restoring last night’s backup']);
    expect(on).toEqual({
      code: 0,
      stdout: expect.stringMatching(/^read-only since \S+Z \(reason: restoring last night’s backup\);/),
      stderr: '',
    });

    // Other commands that change data refuse, and say why.
    const refused = await runCli(env, [
      'user:create',
      '--email',
      'late@example.test',
      '--role',
      'operator',
      '--password',
      'late-password-123',
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^error: the service is in maintenance \(write freeze\) since .*maintenance:off/);
    // Read-only commands still work.
    expect((await runCli(env, ['quota:verify'])).code).toBe(0);

    const port = await freePort();
    service = spawnService({ ...env, PORT: String(port), HOST: '127.0.0.1' });
    await waitUntilReady(service);
    const login = await api('POST', '/api/v1/auth/login', undefined, ADMIN);
    expect(login.status).toBe(200);
    const token = login.body.data.access_token as string;
    const config = { membership_type: 'frozen', max_quota: 10 };
    const write = await api('POST', '/api/v1/admin/quota/configs', token, config);
    expect({ status: write.status, code: write.body.code, retry: write.headers.get('retry-after') }).toEqual({
      status: 503,
      code: 'read_only',
      retry: '60',
    });
    const state = await api('GET', '/api/v1/admin/maintenance', token);
    expect(state.body.data).toEqual({
      read_only: true,
      reason: 'restoring last night’s backup',
      since: expect.any(String),
      by: 'system (cli)',
    });
    expect((await api('GET', '/api/v1/health')).body.quota_system).toBe('degraded');

    // Off, with the instance running: it accepts writes within 2 s.
    const off = await runCli(env, ['maintenance:off']);
    const offAt = Date.now();
    expect(off).toEqual({ code: 0, stdout: expect.stringMatching(/^writable since /), stderr: '' });
    await waitFor(
      async () => (await api('POST', '/api/v1/admin/quota/configs', token, config)).status === 201,
      4000,
      50,
    );
    expect(Date.now() - offAt).toBeLessThan(2000);

    service.child.kill('SIGTERM');
    expect(await service.exited()).toBe(0);

    // The audit log names the system for both CLI changes; the refused user was never created.
    const inspect = await startTestApp({ database, env: { THROTTLE_LIMIT: '0' } });
    try {
      const audit = await dataSourceOf(inspect)
        .getRepository(AuditLogEntry)
        .find({ where: { entityType: 'maintenance' }, order: { id: 'ASC' } });
      expect(audit.map((row) => [row.action, row.actorLabel, row.actorUserId])).toEqual([
        ['maintenance.read_only_on', 'system', null],
        ['maintenance.read_only_off', 'system', null],
      ]);
      const late = await dataSourceOf(inspect).query('SELECT id FROM users WHERE email = ?', ['late@example.test']);
      expect(late).toEqual([]);
    } finally {
      await inspect.close();
    }
  });

  it('refuses bad arguments with its usage (exit status 2)', async () => {
    const tooLong = await runCli(env, ['maintenance:on', '--reason', 'x'.repeat(501)]);
    expect(tooLong.code).toBe(2);
    expect(tooLong.stderr).toContain('--reason must be at most 500 characters');
    const unknown = await runCli(env, ['maintenance:off', '--force']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('usage: npm run cli -- maintenance:off');
  });
});
