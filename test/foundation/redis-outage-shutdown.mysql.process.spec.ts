import { createConnection, type Connection } from 'mysql2/promise';
import { freePort, spawnService, waitFor, waitUntilReady, type ServiceProcess } from '../support/service-process';
import { TcpProxy } from '../support/tcp-proxy';
import { deleteRedisKeys, TEST_JWT_SECRET } from '../support/test-app';
import {
  createTestDatabase,
  mysqlServer,
  redisServer,
  uniqueSuffix,
  type TestDatabase,
} from '../support/test-database';

const API = '/api/v1';
const ADMIN_EMAIL = 'outage-admin@example.test';
const ADMIN_PASSWORD = 'outage-admin-password-0123';
/** Long enough for every Redis client to fail, back off and retry several times. */
const OUTAGE_MS = 12_000;
/** Well under SHUTDOWN_TIMEOUT_MS: a shutdown that waits for Redis would hit the timeout instead. */
const SHUTDOWN_TIMEOUT_MS = 25_000;
const EXITS_WITHIN_MS = 5_000;
/** Each Redis client says it is unreachable at most once per this long (10 s, with slack for timers). */
const LOG_INTERVAL_MS = 9_000;

interface LogLine {
  level?: string;
  msg?: string;
  time?: string;
  client?: string;
  check?: string;
  [key: string]: unknown;
}

/** Resolves with the exit code, or 'still running' once the time is up (the caller kills it). */
async function exitWithin(service: ServiceProcess, ms: number): Promise<number | null | 'still running'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'still running'>((resolve) => {
    timer = setTimeout(() => resolve('still running'), ms);
  });
  try {
    return await Promise.race([service.exited(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function login(baseUrl: string): Promise<Record<string, string>> {
  const res = await json(
    await fetch(`${baseUrl}${API}/auth/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD }),
    }),
  );
  expect(res.status).toBe(200);
  return { 'Content-Type': 'application/json', Authorization: `Bearer ${res.body.data.access_token}` };
}

async function json(res: Response): Promise<{ status: number; body: Record<string, any> }> {
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, any>) : {} };
}

/** What a client of the API does during the outage: log in, record a bulk operation, read stats. */
async function useTheApi(baseUrl: string): Promise<void> {
  const auth = await login(baseUrl);
  const membershipType = `outage${Date.now().toString(36)}`;
  const config = await fetch(`${baseUrl}${API}/admin/quota/configs`, {
    method: 'POST',
    headers: auth,
    body: JSON.stringify({ membership_type: membershipType, max_quota: 10 }),
  });
  expect(config.status).toBe(201);
  // Recorded in MySQL now; the queue part fails and is left to the sweep.
  const bulk = await json(
    await fetch(`${baseUrl}${API}/admin/quota/bulk-adjust`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ membership_type: membershipType, delta: 1 }),
    }),
  );
  expect(bulk.status).toBe(202);
  const stats = await fetch(`${baseUrl}${API}/admin/quota/stats?membership_type=${membershipType}`, { headers: auth });
  expect(stats.status).toBe(200);
  // Monitors poll the seed's /health; each poll checks Redis and fails.
  for (let i = 0; i < 5; i++) {
    const health = await fetch(`${baseUrl}${API}/health`);
    expect(health.status).toBe(200);
  }
}

/**
 * Every line the process wrote must be a JSON log line (no raw stack traces or driver dumps), and
 * until SIGTERM each Redis client, and the health check of Redis, says it is unreachable at most
 * once per interval, with the message only.
 */
function checkOutput(output: string, cutAt: number, termAt: number): void {
  const lines = output.split('\n').filter((l) => l.trim() !== '');
  const parsed = lines.map((text) => {
    try {
      const line = JSON.parse(text) as unknown;
      return { text, line: typeof line === 'object' && line !== null ? (line as LogLine) : null };
    } catch {
      return { text, line: null };
    }
  });
  expect(parsed.filter((p) => p.line === null).map((p) => p.text)).toEqual([]);

  const during = (at: number) => at >= cutAt && at < termAt;
  // Stack traces are left out: their file paths say nothing about Redis (a checkout may be named so).
  const withoutStacks = (line: LogLine) =>
    JSON.stringify(line, (key, value: unknown) => (key === 'stack' ? undefined : value));
  const redisLines = parsed.filter(
    ({ line }) => /redis|ECONNREFUSED|ECONNRESET/i.test(withoutStacks(line!)) && during(Date.parse(line!.time ?? '')),
  );
  // A handful: one per client (shared client, queue, worker, stats cache) and the health check,
  // some twice over 12 s.
  expect(redisLines.length).toBeGreaterThan(0);
  expect(redisLines.length).toBeLessThanOrEqual(10);
  const lastByClient = new Map<string, number>();
  const offending: string[] = [];
  for (const { text, line } of redisLines) {
    const at = Date.parse(line!.time!);
    const source = line!.check === undefined ? String(line!.client) : `check:${String(line!.check)}`;
    const previous = lastByClient.get(source);
    lastByClient.set(source, at);
    if (
      line!.level !== 'warn' ||
      (typeof line!.client !== 'string' && typeof line!.check !== 'string') ||
      // The message only: no stack, no driver fields (errno, syscall, address, port).
      /"stack":"[^"]|"errno"|"syscall"|"address"/.test(text) ||
      (previous !== undefined && at - previous < LOG_INTERVAL_MS)
    ) {
      offending.push(text);
    }
  }
  expect(offending).toEqual([]);
}

describe('SIGTERM while Redis is unreachable (built service; Redis behind a proxy the test cuts)', () => {
  jest.setTimeout(90_000);
  let database: TestDatabase | undefined;
  let proxy: TcpProxy | undefined;
  let service: ServiceProcess | undefined;
  let resumer: ServiceProcess | undefined;
  let db: Connection | undefined;
  let prefix: string | undefined;

  afterEach(async () => {
    for (const s of [service, resumer]) {
      if (s && s.child.exitCode === null && s.child.signalCode === null) {
        s.child.kill('SIGKILL');
        await s.exited();
      }
    }
    service = resumer = undefined;
    await db?.end();
    db = undefined;
    await proxy?.stop();
    proxy = undefined;
    if (prefix) await deleteRedisKeys(prefix);
    prefix = undefined;
    await database?.drop();
    database = undefined;
  });

  async function start(role: string, extra: Record<string, string> = {}): Promise<ServiceProcess> {
    const port = await freePort();
    return spawnService({
      ...database!.env,
      APP_ENV: 'testing',
      LOG_LEVEL: 'info',
      JWT_SECRET: TEST_JWT_SECRET,
      PORT: String(port),
      HOST: '127.0.0.1',
      APP_ROLE: role,
      REDIS_HOST: '127.0.0.1',
      REDIS_PORT: String(proxy!.port),
      REDIS_PREFIX: prefix!,
      ADMIN_EMAIL,
      ADMIN_PASSWORD,
      // The sweep keeps trying to queue what was recorded during the outage.
      JOBS_SWEEP_INTERVAL_MS: '1000',
      SHUTDOWN_DRAIN_DELAY_MS: '500',
      SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
      ...extra,
    });
  }

  async function setUp(): Promise<void> {
    prefix = `test-outage-${uniqueSuffix()}`;
    database = await createTestDatabase('mysql');
    proxy = new TcpProxy(await freePort(), { host: redisServer.host, port: redisServer.port });
    await proxy.start();
  }

  it.each(['all', 'worker', 'api'])(
    'APP_ROLE=%s stays ready, logs the outage rate-limited as JSON, and exits 0 promptly on SIGTERM',
    async (role) => {
      await setUp();
      service = await start(role);
      await waitUntilReady(service, 20_000);
      const baseUrl = service.baseUrl;

      const cutAt = Date.now();
      await proxy!.stop();
      if (role !== 'worker') {
        await waitFor(
          async () => (await json(await fetch(`${baseUrl}${API}/health`))).body.quota_system === 'degraded',
          5_000,
        );
        await useTheApi(baseUrl);
      }
      while (Date.now() - cutAt < OUTAGE_MS) {
        expect((await fetch(`${baseUrl}${API}/health/ready`)).status).toBe(200);
        await new Promise((r) => setTimeout(r, 1_000));
      }

      const termAt = Date.now();
      service.child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 200));
      expect((await fetch(`${baseUrl}${API}/health/ready`)).status).toBe(503);
      const code = await exitWithin(service, EXITS_WITHIN_MS);
      // On failure, the end of the log says what it waited for.
      expect({ code, log: code === 0 ? '' : service.output().slice(-4000) }).toEqual({ code: 0, log: '' });
      expect(service.output()).toContain('shutdown complete');
      checkOutput(service.output(), cutAt, termAt);
    },
  );

  it('APP_ROLE=all with an operation running: the chunk finishes, exit 0, and a later worker completes it once per member', async () => {
    await setUp();
    // Small chunks so the operation is still running when Redis goes; a short lock so the job a
    // stopped worker leaves active in Redis is taken over quickly once Redis is back.
    const jobEnv = { JOBS_CHUNK_SIZE: '1', JOBS_LOCK_DURATION_MS: '2000' };
    service = await start('all', jobEnv);
    await waitUntilReady(service, 20_000);
    db = await createConnection({ ...mysqlServer, database: database!.env.DB_DATABASE });
    const auth = await login(service.baseUrl);
    const membershipType = `running${Date.now().toString(36)}`;
    const config = await fetch(`${service.baseUrl}${API}/admin/quota/configs`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ membership_type: membershipType, max_quota: 100 }),
    });
    expect(config.status).toBe(201);
    const members = 10_000;
    for (let start = 0; start < members; start += 1000) {
      const rows = Array.from({ length: 1000 }, (_, i) => [`${membershipType}-${start + i}`, membershipType, 50]);
      await db.query('INSERT INTO members (external_id, membership_type, quota_balance) VALUES ?', [rows]);
    }
    await db.query(
      `INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor)
       SELECT id, quota_balance, quota_balance, 'initial_grant', 'system' FROM members WHERE membership_type = ?`,
      [membershipType],
    );
    const bulk = await json(
      await fetch(`${service.baseUrl}${API}/admin/quota/bulk-adjust`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ membership_type: membershipType, delta: 1 }),
      }),
    );
    expect(bulk.status).toBe(202);
    const operationId = String(bulk.body.data.operation_id);
    const progress = async () => {
      const [rows] = await db!.query('SELECT status, processed FROM quota_operations WHERE id = ?', [operationId]);
      const [row] = rows as { status: string; processed: unknown }[];
      return { status: row.status, processed: Number(row.processed) };
    };
    const written = async () => {
      const [rows] = await db!.query('SELECT COUNT(*) AS n FROM member_quota_history WHERE operation_id = ?', [
        operationId,
      ]);
      return Number((rows as { n: unknown }[])[0].n);
    };
    await waitFor(async () => (await progress()).processed >= 200, 20_000, 10);

    await proxy!.stop();
    // Long enough for the worker's connections to be between reconnect attempts.
    await new Promise((r) => setTimeout(r, 1_500));
    service.child.kill('SIGTERM');
    const code = await exitWithin(service, EXITS_WITHIN_MS);
    expect({ code, log: code === 0 ? '' : service.output().slice(-4000) }).toEqual({ code: 0, log: '' });
    // Stopped on a chunk boundary, not finished: what is counted is exactly what the ledger holds.
    const stopped = await progress();
    expect(stopped.status).toBe('running');
    expect(stopped.processed).toBeLessThan(members);
    expect(await written()).toBe(stopped.processed);

    await proxy!.start();
    resumer = await start('worker', jobEnv);
    await waitUntilReady(resumer, 20_000);
    await waitFor(async () => (await progress()).status === 'completed', 60_000, 200);
    expect(await progress()).toEqual({ status: 'completed', processed: members });
    expect(await written()).toBe(members);
    const [wrong] = await db.query(
      'SELECT COUNT(*) AS n FROM members WHERE membership_type = ? AND quota_balance <> 51',
      [membershipType],
    );
    expect(Number((wrong as { n: unknown }[])[0].n)).toBe(0);

    // With Redis up, the normal stop: exit 0, and nothing raw in either log.
    resumer.child.kill('SIGTERM');
    expect(await exitWithin(resumer, EXITS_WITHIN_MS)).toBe(0);
    for (const output of [service.output(), resumer.output()]) {
      const raw = output.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('{'));
      expect(raw).toEqual([]);
    }
  });
});
