import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection } from 'mysql2/promise';
import { MIGRATIONS } from '../../src/database/migrations';
import {
  BUILT_CLI,
  freePort,
  runNode,
  spawnService,
  waitFor,
  waitForOutput,
  waitUntilReady,
  type ServiceProcess,
} from '../support/service-process';
import { TEST_JWT_SECRET } from '../support/test-app';
import { mysqlServer } from '../support/test-database';
import {
  makeCertificates,
  startTlsMariaDb,
  startTlsRedis,
  type Certificates,
  type TlsMariaDb,
  type TlsRedis,
} from '../support/tls-servers';

const ROOT = join(__dirname, '../..');
const CLI = BUILT_CLI;
const ORMCONFIG = join(ROOT, 'dist/ormconfig.js');
const TYPEORM_CLI = join(ROOT, 'node_modules/typeorm/cli.js');
const API = '/api/v1';
const PREFIX = 'quota-tls-test';

function without(env: Record<string, string>, ...names: string[]): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !names.includes(name)));
}

/** What a refused MySQL certificate says: the connection, Node's reason and the settings to check. */
const CERTIFICATE_REFUSED = /MySQL TLS handshake failed: [^\n]*certificate[^\n]*DB_SSL_CA/;

describe('encrypted connections: the service on a TLS-only MariaDB and a TLS-only Redis (servers started here)', () => {
  jest.setTimeout(60_000);
  let work: string;
  let certs: Certificates;
  let db: TlsMariaDb | undefined;
  let redis: TlsRedis | undefined;
  let env: Record<string, string>;
  const services: ServiceProcess[] = [];
  /** Every HTTP body the services sent, checked at the end for connection details. */
  const bodies: string[] = [];

  beforeAll(async () => {
    expect(existsSync(CLI) && existsSync(ORMCONFIG)).toBe(true);
    work = mkdtempSync(join(tmpdir(), 'quota-tls-'));
    certs = makeCertificates(join(work, 'pki'));
    [db, redis] = await Promise.all([
      startTlsMariaDb(join(work, 'mariadb'), certs),
      startTlsRedis(join(work, 'redis'), certs),
    ]);
    env = {
      APP_ENV: 'production',
      LOG_LEVEL: 'info',
      JWT_SECRET: TEST_JWT_SECRET,
      HOST: '127.0.0.1',
      DB_CONNECTION: 'mysql',
      DB_HOST: db.host,
      DB_PORT: String(db.port),
      DB_DATABASE: db.database,
      DB_USERNAME: db.user,
      DB_PASSWORD: db.password,
      DB_SSL: 'true',
      DB_SSL_CA: certs.caFile,
      REDIS_HOST: redis.host,
      REDIS_PORT: String(redis.port),
      REDIS_TLS: 'true',
      REDIS_TLS_CA: certs.caFile,
      REDIS_PREFIX: PREFIX,
      THROTTLE_LIMIT: '0',
      THROTTLE_LOGIN_LIMIT: '0',
    };
  }, 90_000);

  afterAll(async () => {
    for (const service of services) {
      if (service.child.exitCode === null && service.child.signalCode === null) service.child.kill('SIGKILL');
    }
    await Promise.allSettled([db?.stop(), redis?.stop()]);
    if (work) rmSync(work, { recursive: true, force: true });
  }, 60_000);

  async function startService(overrides: Record<string, string>): Promise<ServiceProcess> {
    const service = spawnService({ ...env, ...overrides, PORT: String(await freePort()) });
    services.push(service);
    return service;
  }

  async function call(service: ServiceProcess, method: string, path: string, token?: string, body?: unknown) {
    const res = await fetch(`${service.baseUrl}${API}${path}`, {
      method,
      headers: {
        ...(token ? { Authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    bodies.push(text);
    return {
      status: res.status,
      headers: res.headers,
      text,
      body: text ? (JSON.parse(text) as Record<string, any>) : {},
    };
  }

  async function stopService(service: ServiceProcess): Promise<void> {
    service.child.kill('SIGTERM');
    expect(await service.exited()).toBe(0);
  }

  it('the MariaDB fixture refuses plain TCP (require_secure_transport) and takes the same login over TLS', async () => {
    const [{ value }] = await db!.admin<Array<{ value: number }>>('SELECT @@require_secure_transport AS value');
    expect(Number(value)).toBe(1);
    const login = { host: db!.host, port: db!.port, user: db!.user, password: db!.password, database: db!.database };
    // MariaDB answers a plain login on such a server with "access denied", whatever the password.
    await expect(createConnection(login)).rejects.toMatchObject({ code: 'ER_ACCESS_DENIED_ERROR' });
    const secure = await createConnection({ ...login, ssl: { ca: readFileSync(certs.caFile, 'utf8') } });
    try {
      const [rows] = await secure.query("SHOW SESSION STATUS LIKE 'Ssl_version'");
      expect(rows).toEqual([{ Variable_name: 'Ssl_version', Value: expect.stringMatching(/^TLSv1\.[23]$/) }]);
    } finally {
      await secure.end();
    }
  });

  it('migrations run through the TypeORM CLI over TLS; it refuses a server it cannot verify and a plain connection', async () => {
    const result = await runNode([TYPEORM_CLI, 'migration:run', '-d', ORMCONFIG], env);
    expect(result).toMatchObject({ code: 0 });
    const applied = await db!.admin<Array<{ n: number }>>(`SELECT COUNT(*) AS n FROM ${db!.database}.migrations`);
    expect(Number(applied[0].n)).toBe(MIGRATIONS.length);

    const wrongCa = await runNode([TYPEORM_CLI, 'migration:show', '-d', ORMCONFIG], {
      ...env,
      DB_SSL_CA: certs.otherCaFile,
    });
    expect(wrongCa.code).not.toBe(0);
    expect(wrongCa.stdout + wrongCa.stderr).toMatch(CERTIFICATE_REFUSED);
    const plain = await runNode([TYPEORM_CLI, 'migration:show', '-d', ORMCONFIG], without(env, 'DB_SSL', 'DB_SSL_CA'));
    expect(plain.code).not.toBe(0);
    expect(plain.stdout + plain.stderr).toMatch(/Access denied/);
  });

  it('npm run cli: user:create and quota:verify work over TLS; a server it cannot verify or a plain connection fails with a clear message', async () => {
    const created = await runNode(
      [CLI, 'user:create', '--email', 'admin@tls.example.com', '--role', 'admin', '--password', 'tls-admin-password-1'],
      env,
    );
    expect(created).toEqual({
      code: 0,
      stdout: expect.stringMatching(/^created admin user \d+ \(admin@tls\.example\.com\)\n$/),
      stderr: '',
    });
    expect(await runNode([CLI, 'quota:verify'], env)).toMatchObject({
      code: 0,
      stdout: expect.stringMatching(/^ok: /),
    });
    // The certificate names both the address and the host name.
    expect(await runNode([CLI, 'quota:verify'], { ...env, DB_HOST: 'localhost' })).toMatchObject({ code: 0 });

    const wrongCa = await runNode([CLI, 'quota:verify'], { ...env, DB_SSL_CA: certs.otherCaFile });
    expect(wrongCa.code).toBe(1);
    expect(wrongCa.stdout).toBe('');
    expect(wrongCa.stderr.trim().split('\n')).toEqual([expect.stringMatching(CERTIFICATE_REFUSED)]);
    // Node's built-in CAs do not include the test authority either.
    const builtIn = await runNode([CLI, 'quota:verify'], without(env, 'DB_SSL_CA'));
    expect(builtIn.code).toBe(1);
    expect(builtIn.stderr).toMatch(CERTIFICATE_REFUSED);
    const plain = await runNode([CLI, 'quota:verify'], without(env, 'DB_SSL', 'DB_SSL_CA'));
    expect(plain.code).toBe(1);
    expect(plain.stderr).toMatch(/Access denied/);
  });

  it('DB_SSL=true never falls back to plain text when the server offers no TLS', async () => {
    const result = await runNode([CLI, 'quota:verify'], {
      ...without(env, 'DB_SSL_CA'),
      DB_HOST: mysqlServer.host,
      DB_PORT: String(mysqlServer.port),
      DB_USERNAME: mysqlServer.user,
      DB_PASSWORD: mysqlServer.password,
      DB_DATABASE: 'quota_tls_absent_test',
    });
    expect(result.code).toBe(1);
    // A server without TLS is refused outright; one with TLS but a certificate we cannot verify too.
    expect(result.stderr).toMatch(/MySQL TLS: the server does not offer TLS|MySQL TLS handshake failed/);
  });

  it('the service runs on both over TLS: health, login, consume, a bulk adjustment through BullMQ, stats through the cache', async () => {
    const service = await startService({});
    await waitUntilReady(service, 30_000);
    const redisClient = redis!.client();
    try {
      const health = await call(service, 'GET', '/health');
      expect(health.status).toBe(200);
      expect(health.body).toMatchObject({
        status: 'healthy',
        database: 'connected',
        quota_system: 'operational',
        details: { database: { status: 'up' }, redis: { status: 'up' } },
      });

      const login = await call(service, 'POST', '/auth/login', undefined, {
        email: 'admin@tls.example.com',
        password: 'tls-admin-password-1',
      });
      expect(login.status).toBe(200);
      const token = login.body.data.access_token as string;

      const type = `tls${randomBytes(3).toString('hex')}`;
      expect(
        (await call(service, 'POST', '/admin/quota/configs', token, { membership_type: type, max_quota: 50 })).status,
      ).toBe(201);
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const member = await call(service, 'POST', '/admin/members', token, {
          external_id: `tls-member-${i}-${type}`,
          membership_type: type,
        });
        expect(member.status).toBe(201);
        ids.push(String(member.body.data.id));
      }

      const consumed = await call(service, 'POST', `/quota/members/${ids[0]}/consume`, token, { amount: 5 });
      expect(consumed.status).toBe(200);
      expect(consumed.body.data).toMatchObject({ balance: 45 });

      const bulk = await call(service, 'POST', '/admin/quota/bulk-adjust', token, { member_ids: ids, delta: 10 });
      expect(bulk.status).toBe(202);
      const operationId = bulk.body.data.operation_id as string;
      let operation: Record<string, any> = {};
      await waitFor(async () => {
        operation = (await call(service, 'GET', `/admin/quota/operations/${operationId}`, token)).body.data;
        return operation.status === 'completed';
      }, 20_000);
      expect(operation).toMatchObject({ status: 'completed', total: 3, processed: 3, changed: 3, failed: 0 });
      const balances = await Promise.all(ids.map((id) => call(service, 'GET', `/quota/members/${id}`, token)));
      expect(balances.map((b) => b.body.data.balance)).toEqual([55, 60, 60]);
      // The queue lives in the TLS Redis (the only Redis this service knows): BullMQ wrote its keys there.
      await redisClient.connect();
      expect(await redisClient.keys(`{${PREFIX}}:*`)).not.toHaveLength(0);

      const stats = `/admin/quota/stats?membership_type=${type}`;
      const first = await call(service, 'GET', stats, token);
      expect(first.status).toBe(200);
      expect(first.headers.get('x-cache')).toBe('MISS');
      expect(first.body.data.membership_types).toEqual([
        expect.objectContaining({ membership_type: type, members: 3, total_balance: 175 }),
      ]);
      const second = await call(service, 'GET', stats, token);
      expect(second.headers.get('x-cache')).toBe('HIT');
      expect(await redisClient.keys(`${PREFIX}:stats::*${type}*`)).toHaveLength(1);
    } finally {
      redisClient.disconnect();
    }

    const log = service.output();
    expect(log).toContain(`database: MySQL ${db!.host}:${db!.port}/${db!.database} (TLS, CA ${certs.caFile})`);
    expect(log).toContain(`background work: Redis ${redis!.host}:${redis!.port} (TLS, CA ${certs.caFile})`);
    expect(log).not.toContain(db!.password);
    expect(log).not.toContain('BEGIN CERTIFICATE');
    await stopService(service);
  });

  it('does not start when the MariaDB certificate does not verify, and says why', async () => {
    const service = await startService({ DB_SSL_CA: certs.otherCaFile });
    // Start-up gives an unreachable database a few tries (about 10 s) before giving up.
    const code = await service.exited();
    expect(code).toBe(1);
    expect(service.output()).toMatch(
      /^quota-service failed to start: MySQL TLS handshake failed: .*certificate.*DB_SSL_CA/m,
    );
    expect(service.output()).not.toContain(db!.password);
  });

  it('with a Redis certificate it cannot verify, it serves from MariaDB and reports quota_system degraded', async () => {
    const service = await startService({ REDIS_TLS_CA: certs.otherCaFile });
    await waitUntilReady(service, 30_000);
    const health = await call(service, 'GET', '/health');
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({
      status: 'healthy',
      database: 'connected',
      quota_system: 'degraded',
      details: { database: { status: 'up' }, redis: { status: 'down' } },
    });
    expect((await call(service, 'GET', '/health/ready')).status).toBe(200);
    const login = await call(service, 'POST', '/auth/login', undefined, {
      email: 'admin@tls.example.com',
      password: 'tls-admin-password-1',
    });
    expect(login.status).toBe(200);
    // The operator learns why from the log; the probe body never says it.
    await waitForOutput(service, /"message":"[^"]*certificate[^"]*".*"msg":"redis connection error"/);
    // Stopped hard: this test is about start-up and probes, not about draining while Redis is away.
    service.child.kill('SIGKILL');
    await service.exited();
  });

  // Last: the servers present another certificate from here on.
  it('checks the name in the certificate too; only outside production can the checks be switched off', async () => {
    await db!.presentCertificate(certs.otherName);
    await redis!.presentCertificate(certs.otherName);

    const byName = await runNode([CLI, 'quota:verify'], { ...env, DB_HOST: 'localhost' });
    expect(byName.code).toBe(1);
    expect(byName.stderr).toMatch(
      /^failed: MySQL TLS handshake failed: .*Host: localhost\. is not in the cert's altnames: DNS:db\.elsewhere\.invalid .*DB_HOST a name in it/,
    );
    // By address the client checks the name "localhost" (mysql2 sends no server name for an IP); still refused.
    const byAddress = await runNode([CLI, 'quota:verify'], env);
    expect(byAddress.code).toBe(1);
    expect(byAddress.stderr).toMatch(/^failed: MySQL TLS handshake failed: .*altnames.*DB_HOST is an IP address/);
    const production = await runNode([CLI, 'quota:verify'], { ...env, DB_SSL_REJECT_UNAUTHORIZED: 'false' });
    expect(production).toEqual({
      code: 1,
      stdout: '',
      stderr: expect.stringMatching(/^Invalid configuration: DB_SSL_REJECT_UNAUTHORIZED: is refused in production/),
    });
    const staging = { APP_ENV: 'staging', DB_SSL_REJECT_UNAUTHORIZED: 'false' };
    expect(await runNode([CLI, 'quota:verify'], { ...env, ...staging })).toMatchObject({ code: 0 });

    // Redis checks the name as well: the service runs on the database and reports degraded.
    const checking = await startService(staging);
    await waitUntilReady(checking, 30_000);
    expect((await call(checking, 'GET', '/health')).body).toMatchObject({
      database: 'connected',
      quota_system: 'degraded',
    });
    await waitForOutput(checking, /"message":"[^"]*is not in the cert's list[^"]*".*"msg":"redis connection error"/);
    checking.child.kill('SIGKILL');
    await checking.exited();

    const unchecked = await startService({ ...staging, REDIS_TLS_REJECT_UNAUTHORIZED: 'false' });
    await waitUntilReady(unchecked, 30_000);
    await waitForOutput(
      unchecked,
      /\(TLS without certificate verification\); background work: .*\(TLS without certificate verification\)/,
    );
    const health = await call(unchecked, 'GET', '/health');
    expect(health.body).toMatchObject({ database: 'connected', quota_system: 'operational' });
    await stopService(unchecked);
  });

  it('no HTTP body shows a host, a port or driver text', () => {
    expect(bodies.length).toBeGreaterThan(10);
    const leaks = [
      db!.host,
      'localhost',
      `:${db!.port}`,
      `:${redis!.port}`,
      'certificate',
      'ECONNREFUSED',
      'HANDSHAKE',
      'ER_',
      'mysql2',
      'ioredis',
    ];
    for (const body of bodies) {
      for (const leak of leaks) expect(body).not.toContain(leak);
    }
  });
});
