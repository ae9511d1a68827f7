'use strict';
/**
 * npm run bench: the built service in production mode on MariaDB/MySQL + Redis against a minimal
 * node:http + mysql2 baseline running the same consume transaction. Everything runs on loopback,
 * on a database created for the run and dropped afterwards, within a hard time limit.
 *
 * Settings (environment): BENCH_DURATION (s, default 15), BENCH_WARMUP (s, 3), BENCH_CONNECTIONS
 * (64), BENCH_MEMBERS (100000), BENCH_ROUNDS (1; rounds alternate service and baseline),
 * BENCH_POOL_SIZE (10, both servers), BENCH_THROTTLE_LIMIT (per-user rate limit of the service;
 * default 1000000 per minute: the limiter runs but does not refuse), BENCH_LOG_LEVEL (info),
 * BENCH_KEEP_DB=1, BENCH_SERVICE_NODE_ARGS (e.g. --cpu-prof), BENCH_ROLLUPS=off (the service without its
 * ledger tail processor, to see what the stats rollups cost), BENCH_SERVICE_ROLE (all; api measures the
 * API process alone, as the api Deployment runs it), and DB_HOST/DB_PORT/DB_USERNAME/DB_PASSWORD,
 * REDIS_HOST/REDIS_PORT, BENCH_MIXED_SECONDS (0: off; otherwise a mixed load on the service alone
 * afterwards, with BENCH_MIXED_CONNECTIONS (32): consume with a unique key, balance, stats and
 * history reads in turn). The service's peak RSS (VmHWM) is reported with the results.
 */
const { randomBytes } = require('node:crypto');
const path = require('node:path');
const mysql = require('mysql2/promise');
const autocannon = require('autocannon');
const {
  ROOT,
  SERVICE_NODE_ARGS,
  dropDatabase,
  peakRssMb,
  runBench,
  num,
  logger,
  freePort,
  processes,
  waitUntil,
  servers,
} = require('./lib');

const log = logger('bench');
const { start, runToCompletion, stopAll } = processes();

const env = process.env;

const settings = {
  duration: num('BENCH_DURATION', 15),
  warmup: num('BENCH_WARMUP', 3),
  connections: num('BENCH_CONNECTIONS', 64),
  members: num('BENCH_MEMBERS', 100_000),
  rounds: Math.max(1, num('BENCH_ROUNDS', 1)),
  poolSize: num('BENCH_POOL_SIZE', 10),
  throttleLimit: String(num('BENCH_THROTTLE_LIMIT', 1_000_000)),
  logLevel: env.BENCH_LOG_LEVEL || 'info',
  keepDb: env.BENCH_KEEP_DB === '1',
  rollups: env.BENCH_ROLLUPS !== 'off',
  role: env.BENCH_SERVICE_ROLE || 'all',
  mixedSeconds: num('BENCH_MIXED_SECONDS', 0),
  mixedConnections: num('BENCH_MIXED_CONNECTIONS', 32),
  ...servers(),
};

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);
const UNIFORM_BALANCE = 1_000_000;
const HOT_BALANCE = 2_000_000_000;
let database = null;

async function seed(conn) {
  log(`seeding ${settings.members} members (set-based, 10,000 rows per statement)`);
  const started = Date.now();
  await conn.query(
    "INSERT INTO member_quota_config (membership_type, max_quota, reset_period, is_active, description, created_at, updated_at) VALUES ('bench', ?, 'none', 1, 'npm run bench', NOW(3), NOW(3))",
    [UNIFORM_BALANCE],
  );
  const chunk = 10_000;
  for (let first = 0; first < settings.members; first += chunk) {
    const count = Math.min(chunk, settings.members - first);
    const values = [];
    for (let i = 0; i < count; i++) {
      const n = first + i;
      values.push(`('bench-${n}', 'bench', ${n === 0 ? HOT_BALANCE : UNIFORM_BALANCE}, NOW(3), NOW(3), NOW(3))`);
    }
    await conn.query(
      `INSERT INTO members (external_id, membership_type, quota_balance, period_started_at, created_at, updated_at) VALUES ${values.join(', ')}`,
    );
  }
  await conn.query(
    "INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor) SELECT id, quota_balance, quota_balance, 'initial_grant', 'system' FROM members",
  );
  const [[range]] = await conn.query('SELECT MIN(id) AS lo, MAX(id) AS hi FROM members');
  log(`seeded in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return { lo: Number(range.lo), hi: Number(range.hi) };
}

/** One autocannon run against a server; resolves with its result. */
function load(options) {
  return new Promise((resolve, reject) => {
    const instance = autocannon({ pipelining: 1, timeout: 10, ...options }, (err, result) =>
      err ? reject(err) : resolve(result),
    );
    instance.on('error', () => undefined);
  });
}

function drive({ url, pathFor, headers, seconds }) {
  const runId = randomBytes(6).toString('hex');
  let counter = 0;
  return load({
    url,
    connections: settings.connections,
    duration: seconds,
    requests: [
      {
        method: 'POST',
        setupRequest: (req) => ({
          ...req,
          path: pathFor(),
          headers: { ...headers, 'content-type': 'application/json', 'idempotency-key': `${runId}-${counter++}` },
          body: '{"amount":1}',
        }),
      },
    ],
  });
}

/** A busy deployment's mix: each connection consumes (unique key), reads a balance, the stats and a history page, in turn. */
function driveMixed({ url, serviceToken, operatorToken, randomId, seconds }) {
  const runId = randomBytes(6).toString('hex');
  let counter = 0;
  const service = { authorization: `Bearer ${serviceToken}` };
  const operator = { authorization: `Bearer ${operatorToken}` };
  return load({
    url,
    connections: settings.mixedConnections,
    duration: seconds,
    requests: [
      {
        method: 'POST',
        setupRequest: (req) => ({
          ...req,
          path: `/api/v1/quota/members/${randomId()}/consume`,
          headers: { ...service, 'content-type': 'application/json', 'idempotency-key': `${runId}-${counter++}` },
          body: '{"amount":1}',
        }),
      },
      {
        method: 'GET',
        setupRequest: (req) => ({ ...req, path: `/api/v1/quota/members/${randomId()}`, headers: service }),
      },
      { method: 'GET', path: '/api/v1/admin/quota/stats?membership_type=bench', headers: operator },
      {
        method: 'GET',
        setupRequest: (req) => ({
          ...req,
          path: `/api/v1/admin/quota/history?member_id=${randomId()}&limit=20`,
          headers: operator,
        }),
      },
    ],
  });
}

function summarise(result) {
  const codes = result.statusCodeStats || {};
  const count = (code) => (codes[code] ? codes[code].count : 0);
  const total2xx = result['2xx'];
  const c409 = count('409');
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    ok: total2xx,
    conflicts: c409,
    otherNon2xx: result.non2xx - c409,
    errors: result.errors + result.timeouts,
  };
}

function table(rows) {
  const header = ['scenario', 'server', 'req/s', 'p50 ms', 'p99 ms', '2xx', '409', 'other non-2xx', 'errors'];
  const lines = rows.map((r) => [
    r.scenario,
    r.server,
    r.rps.toFixed(0),
    String(r.p50),
    String(r.p99),
    String(r.ok),
    String(r.conflicts),
    String(r.otherNon2xx),
    String(r.errors),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...lines.map(fmt)].join('\n');
}

async function main() {
  for (const host of [settings.db.host, settings.redis.host]) {
    if (!LOOPBACK.has(host)) throw new Error(`the benchmark runs on loopback only; refusing host ${host}`);
  }
  const budgetSeconds = (settings.warmup + settings.duration) * 4 * settings.rounds + settings.mixedSeconds + 300;
  const guard = setTimeout(() => {
    log(`time limit of ${budgetSeconds} s reached; stopping`);
    cleanup().finally(() => process.exit(1));
  }, budgetSeconds * 1000);

  const admin = await mysql.createConnection({ ...settings.db, multipleStatements: false });
  database = `quota_bench_${randomBytes(4).toString('hex')}`;
  await admin.query(`CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  log(`database ${database}`);

  const servicePort = await freePort();
  const baselinePort = await freePort();
  const password = randomBytes(18).toString('base64url');
  // The service and the baseline reach the same database with the same pool size.
  const databaseEnv = {
    DB_HOST: settings.db.host,
    DB_PORT: String(settings.db.port),
    DB_USERNAME: settings.db.user,
    DB_PASSWORD: settings.db.password,
    DB_DATABASE: database,
    DB_POOL_SIZE: String(settings.poolSize),
  };
  const serviceEnv = {
    APP_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: String(servicePort),
    LOG_LEVEL: settings.logLevel,
    DB_CONNECTION: 'mysql',
    ...databaseEnv,
    REDIS_HOST: settings.redis.host,
    REDIS_PORT: String(settings.redis.port),
    REDIS_PREFIX: `bench-${database}`,
    JWT_SECRET: randomBytes(48).toString('base64url'),
    THROTTLE_LIMIT: settings.throttleLimit,
    APP_ROLE: settings.role,
    ...(settings.rollups ? {} : { QUOTA_ANALYTICS_INTERVAL_MS: '0' }),
  };

  log('applying migrations (npm run migration:run)');
  await runToCompletion(
    'migrations',
    path.join(ROOT, 'node_modules/typeorm/cli.js'),
    ['migration:run', '-d', 'dist/ormconfig.js'],
    serviceEnv,
  );
  await admin.query(`USE \`${database}\``);
  const ids = await seed(admin);
  const hotId = ids.lo;
  // Whichever server runs first must not pay for loading the freshly written tables into the
  // buffer pool: read them once (members, with their configs) before any measured run.
  await admin.query(
    'SELECT COUNT(*), SUM(m.quota_balance), SUM(c.max_quota) FROM members m JOIN member_quota_config c ON c.membership_type = m.membership_type',
  );

  log('creating the service and operator users (npm run cli -- user:create)');
  for (const role of ['service', 'operator']) {
    await runToCompletion(
      'user:create',
      path.join(ROOT, 'dist/src/cli/main.js'),
      ['user:create', '--email', `bench-${role}@example.test`, '--role', role, '--password', password],
      serviceEnv,
    );
  }

  const service = start('service', path.join(ROOT, 'dist/src/main.js'), [], serviceEnv, SERVICE_NODE_ARGS);
  const baseline = start('baseline', path.join(__dirname, 'baseline-server.js'), [], {
    PORT: String(baselinePort),
    ...databaseEnv,
  });
  const serviceUrl = `http://127.0.0.1:${servicePort}`;
  const baselineUrl = `http://127.0.0.1:${baselinePort}`;
  await waitUntil(
    async () => (await fetch(`${serviceUrl}/api/v1/health/ready`)).status === 200,
    30_000,
    `the service (${service.stderr()})`,
  );
  await waitUntil(async () => (await fetch(`${baselineUrl}/`)).status === 404, 10_000, 'the baseline');

  const tokenOf = async (role) => {
    const login = await fetch(`${serviceUrl}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: `bench-${role}@example.test`, password }),
    });
    if (login.status !== 200) throw new Error(`login as ${role} failed with ${login.status}`);
    return (await login.json()).data.access_token;
  };
  const token = await tokenOf('service');

  const span = ids.hi - ids.lo + 1;
  const randomId = () => ids.lo + Math.floor(Math.random() * span);
  const servers = {
    service: {
      url: serviceUrl,
      headers: { authorization: `Bearer ${token}` },
      path: (id) => `/api/v1/quota/members/${id}/consume`,
    },
    baseline: { url: baselineUrl, headers: {}, path: (id) => `/consume/${id}` },
  };
  const scenarios = {
    uniform: () => randomId(),
    hot: () => hotId,
  };

  const rows = [];
  for (let round = 1; round <= settings.rounds; round++) {
    for (const [scenario, pick] of Object.entries(scenarios)) {
      // Alternate which server goes first so neither always runs on a warmer database.
      const order = round % 2 === 1 ? ['service', 'baseline'] : ['baseline', 'service'];
      for (const name of order) {
        const server = servers[name];
        const pathFor = () => server.path(pick());
        if (settings.warmup > 0) {
          await drive({ url: server.url, pathFor, headers: server.headers, seconds: settings.warmup });
        }
        log(`round ${round}: ${scenario} on ${name} for ${settings.duration} s`);
        const result = await drive({ url: server.url, pathFor, headers: server.headers, seconds: settings.duration });
        rows.push({ round, scenario, server: name, ...summarise(result) });
      }
    }
  }

  let mixed = null;
  if (settings.mixedSeconds > 0) {
    log(`mixed load on the service for ${settings.mixedSeconds} s`);
    mixed = summarise(
      await driveMixed({
        url: serviceUrl,
        serviceToken: token,
        operatorToken: await tokenOf('operator'),
        randomId,
        seconds: settings.mixedSeconds,
      }),
    );
  }

  const serviceRssMb = peakRssMb(service.child.pid);
  const [[ledger]] = await admin.query(
    `SELECT COUNT(*) AS checked, COALESCE(SUM(m.quota_balance <> COALESCE(s.total, 0)), 0) AS mismatches
       FROM members m LEFT JOIN (SELECT member_id, SUM(delta) AS total FROM member_quota_history GROUP BY member_id) s
         ON s.member_id = m.id`,
  );
  await admin.end();
  clearTimeout(guard);

  // The same statistic for both servers: the best run of each (rounds only repeat the measurement).
  const best = (scenario, server) =>
    rows.filter((r) => r.scenario === scenario && r.server === server).sort((a, b) => b.rps - a.rps)[0];
  const out = [];
  out.push(
    `quota-service benchmark: ${settings.connections} connections, ${settings.duration} s per run, ${settings.members} members, ` +
      `pool ${settings.poolSize}, ${settings.rounds} round(s), throttle limit ${settings.throttleLimit}, log level ${settings.logLevel}, ` +
      `stats rollups ${settings.rollups ? 'on' : 'off'}, service role ${settings.role}`,
  );
  out.push('');
  out.push(table(rows.map((r) => ({ ...r, scenario: settings.rounds > 1 ? `${r.scenario}#${r.round}` : r.scenario }))));
  out.push('');
  for (const scenario of Object.keys(scenarios)) {
    const s = best(scenario, 'service');
    const b = best(scenario, 'baseline');
    const rpsRatio = s.rps / b.rps;
    const p99Ratio = s.p99 / Math.max(1, b.p99);
    out.push(
      `${scenario.padEnd(7)} service/baseline (best run of each): req/s ${rpsRatio.toFixed(2)}x (target >= 0.70: ${rpsRatio >= 0.7 ? 'met' : 'NOT met'}), ` +
        `p99 ${p99Ratio.toFixed(2)}x (target <= 2.00: ${p99Ratio <= 2 ? 'met' : 'NOT met'}), ` +
        `service non-2xx other than 409: ${s.otherNon2xx + s.errors}`,
    );
  }
  if (mixed) {
    out.push(
      `mixed load (consume, balance, stats, history; ${settings.mixedConnections} connections, ${settings.mixedSeconds} s): ` +
        `${mixed.rps.toFixed(0)} req/s, p50 ${mixed.p50} ms, p99 ${mixed.p99} ms, non-2xx other than 409: ${mixed.otherNon2xx + mixed.errors}`,
    );
  }
  out.push(`service (APP_ROLE=${settings.role}) peak RSS over the whole run: ${serviceRssMb.toFixed(0)} MB`);
  out.push(`ledger after the runs: ${ledger.checked} members checked, ${Number(ledger.mismatches)} mismatches`);
  process.stdout.write(`${out.join('\n')}\n`);
}

async function cleanup() {
  await stopAll();
  await dropDatabase(settings, database, log);
}

runBench(main, cleanup);
