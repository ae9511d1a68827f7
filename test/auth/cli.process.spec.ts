import { existsSync } from 'node:fs';
import request from 'supertest';
import { AuditLogEntry } from '../../src/audit/audit-log.entity';
import { User } from '../../src/auth/user.entity';
import { createTestMember } from '../support/auth';
import { BUILT_CLI, runCli } from '../support/service-process';
import { baseTestEnv, startTestApp, type TestApp } from '../support/test-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { dataSourceOf } from './helpers';

describe('npm run cli -- user:create', () => {
  let database: TestDatabase;
  let env: Record<string, string>;
  let testApp: TestApp;

  beforeAll(async () => {
    // jest's global setup builds dist/ (tsc -p tsconfig.build.json) unless SKIP_BUILD=1.
    expect(existsSync(BUILT_CLI)).toBe(true);
    database = await createTestDatabase();
    env = baseTestEnv(database);
    // The service applies migrations and then shares the database with the CLI runs below.
    testApp = await startTestApp({ database, env: { THROTTLE_LIMIT: '0', THROTTLE_LOGIN_LIMIT: '0' } });
  });

  afterAll(async () => {
    await testApp?.close();
    await database?.drop();
  });

  const users = () => dataSourceOf(testApp).getRepository(User);
  const login = (email: string, password: string) =>
    request(testApp.server).post('/api/v1/auth/login').send({ email, password });

  it('creates the first admin with the password from standard input; it can log in', async () => {
    const password = 'piped-admin-password-1';
    const result = await runCli(
      env,
      ['user:create', '--email', 'First@Example.com', '--role', 'admin'],
      `${password}\n`,
    );
    expect(result).toEqual({
      code: 0,
      stdout: expect.stringMatching(/^created admin user \d+ \(first@example\.com\)\n$/),
      stderr: '',
    });
    const user = await users().findOneByOrFail({ email: 'first@example.com' });
    expect(user).toEqual(expect.objectContaining({ role: 'admin', isActive: true, memberId: null }));
    const stored = await users()
      .createQueryBuilder('u')
      .addSelect('u.passwordHash')
      .where('u.id = :id', { id: user.id })
      .getOneOrFail();
    expect(stored.passwordHash).toMatch(/^\$argon2id\$/);
    const audit = await dataSourceOf(testApp)
      .getRepository(AuditLogEntry)
      .findBy({ entityId: String(user.id) });
    expect(audit).toEqual([
      expect.objectContaining({ action: 'user.create', actorLabel: 'system', actorUserId: null }),
    ]);
    expect(audit[0].afterJson).not.toContain(password);
    expect((await login('first@example.com', password)).status).toBe(200);
  });

  it('takes the password from --password too, and links a member user with --member-id', async () => {
    const { memberId } = await createTestMember(testApp);
    const result = await runCli(env, [
      'user:create',
      '--email',
      'member.cli@example.com',
      '--role',
      'member',
      '--member-id',
      memberId,
      '--password',
      'flag-password-12345',
    ]);
    expect(result.code).toBe(0);
    const user = await users().findOneByOrFail({ email: 'member.cli@example.com' });
    expect({ role: user.role, memberId: user.memberId }).toEqual({ role: 'member', memberId });
    expect((await login('member.cli@example.com', 'flag-password-12345')).status).toBe(200);
  });

  it.each([
    [
      'a duplicate email',
      ['--email', 'FIRST@example.com', '--role', 'admin'],
      'long-enough-password',
      1,
      /already exists/,
    ],
    [
      'an invalid email',
      ['--email', 'nope', '--role', 'admin'],
      'long-enough-password',
      1,
      /email must be an email address/,
    ],
    ['a short password', ['--email', 'short@example.com', '--role', 'admin'], 'short', 1, /password must be longer/],
    [
      'an unknown role',
      ['--email', 'role@example.com', '--role', 'root'],
      'long-enough-password',
      1,
      /role must be one of/,
    ],
    [
      'a member without --member-id',
      ['--email', 'm@example.com', '--role', 'member'],
      'long-enough-password',
      1,
      /member_id is required/,
    ],
    ['no --email', ['--role', 'admin'], 'long-enough-password', 2, /--email is required/],
    [
      'an unknown option',
      ['--email', 'x@example.com', '--role', 'admin', '--admin'],
      'long-enough-password',
      2,
      /Unknown option/,
    ],
    ['no password anywhere', ['--email', 'x@example.com', '--role', 'admin'], '', 2, /no password given/],
  ])('refuses %s, exits non-zero and creates nothing', async (_name, args, stdin, code, message) => {
    const before = await users().count();
    const result = await runCli(env, ['user:create', ...args], stdin === '' ? '' : `${stdin}\n`);
    expect({ code: result.code, stdout: result.stdout }).toEqual({ code, stdout: '' });
    expect(result.stderr).toMatch(message);
    if (stdin.length >= 12) expect(result.stderr).not.toContain(stdin);
    expect(await users().count()).toBe(before);
  });

  it('lists its commands and refuses unknown ones', async () => {
    const help = await runCli(env, ['help']);
    expect(help).toEqual({ code: 0, stdout: expect.stringContaining('user:create'), stderr: '' });
    const unknown = await runCli(env, ['user:delete']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "user:delete"');
  });

  it('stops with one clear line when the configuration is wrong', async () => {
    const result = await runCli(
      { ...env, DB_CONNECTION: 'postgres' },
      ['user:create', '--email', 'a@example.com', '--role', 'admin'],
      'long-enough-password\n',
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^Invalid configuration: DB_CONNECTION: /);
  });
});
