'use strict';
/**
 * node bench/stats.js: GET /api/v1/admin/quota/stats of the built service (production mode,
 * MariaDB/MySQL + Redis) over BENCH_STATS_MEMBERS members (default 1,000,000, each with its
 * initial_grant row) and BENCH_STATS_ROWS further ledger rows (default 1,000,000) spread over the
 * last 90 days. Measures uncached stats (?fresh=true) for 7-, 30- and 90-day windows, the
 * straightforward join of history with members for the same windows (for comparison), and cached
 * stats at BENCH_CONNECTIONS (64) connections with autocannon. Two reference rows say what this
 * machine allows at that load: the service's liveness probe (no authentication, nothing read) and
 * a bare node:http server answering the same body from memory (bench/baseline-server.js).
 * Loopback only, on a database created for the run and dropped afterwards, within a hard time limit.
 *
 * Settings: BENCH_STATS_MEMBERS, BENCH_STATS_ROWS, BENCH_STATS_SAMPLES (uncached requests per
 * window, 15), BENCH_DURATION (s of the cached run, 10), BENCH_CONNECTIONS (64), BENCH_KEEP_DB=1,
 * BENCH_LOG_LEVEL (warn), DB_HOST/DB_PORT/DB_USERNAME/DB_PASSWORD, REDIS_HOST/REDIS_PORT.
 * Needs `npm run build` first (dist/).
 */
const { randomBytes } = require('node:crypto');
const path = require('node:path');
const mysql = require('mysql2/promise');
const autocannon = require('autocannon');
const {
  ROOT,
  SERVICE_NODE_ARGS,
  dropDatabase,
  runBench,
  num,
  logger,
  freePort,
  processes,
  waitUntil,
  servers,
} = require('./lib');

const log = logger('bench:stats');
const { start, runToCompletion, stopAll } = processes();

const env = process.env;

const settings = {
  members: num('BENCH_STATS_MEMBERS', 1_000_000),
  rows: num('BENCH_STATS_ROWS', 1_000_000),
  samples: Math.max(1, num('BENCH_STATS_SAMPLES', 15)),
  duration: num('BENCH_DURATION', 10),
  connections: num('BENCH_CONNECTIONS', 64),
  logLevel: env.BENCH_LOG_LEVEL || 'warn',
  keepDb: env.BENCH_KEEP_DB === '1',
  ...servers(),
};

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);
const TYPES = [
  ['basic', 100],
  ['plus', 1000],
  ['pro', 10000],
];
const DAY_MS = 86_400_000;
const CHUNK = 100_000;
let database = null;

/** Set-based seeding: INSERT ... SELECT over a generated sequence, 100,000 rows per statement. */
async function seed(conn) {
  const started = Date.now();
  await conn.query('SET SESSION max_recursive_iterations = 1000000');
  for (const [type, max] of TYPES) {
    await conn.query(
      "INSERT INTO member_quota_config (membership_type, max_quota, reset_period, is_active, description) VALUES (?, ?, 'none', 1, 'bench')",
      [type, max],
    );
  }
  const seq = (n) => `WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n < ${n - 1}) `;
  const typeOf = (expr) => `ELT(1 + (${expr}) % 3, 'basic', 'plus', 'pro')`;
  const maxOf = (expr) => `ELT(1 + (${expr}) % 3, 100, 1000, 10000)`;
  log(`seeding ${settings.members} members with their initial_grant rows`);
  for (let first = 0; first < settings.members; first += CHUNK) {
    const count = Math.min(CHUNK, settings.members - first);
    await conn.query(
      `INSERT INTO members (id, external_id, membership_type, quota_balance, created_at, updated_at)
       ${seq(count)} SELECT n + ${first} + 1, CONCAT('bench-', n + ${first}), ${typeOf(`n + ${first}`)}, ${maxOf(`n + ${first}`)},
              NOW(3) - INTERVAL 91 DAY, NOW(3) - INTERVAL 91 DAY FROM seq`,
    );
  }
  await conn.query(
    `INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor, created_at)
     SELECT id, quota_balance, quota_balance, 'initial_grant', 'system', created_at FROM members`,
  );
  const [[range]] = await conn.query('SELECT MIN(id) AS lo, MAX(id) AS hi FROM members');
  const lo = Number(range.lo);
  const span = Number(range.hi) - lo + 1;
  log(`seeding ${settings.rows} ledger rows over 90 days (consumption, with some refunds and adjustments)`);
  const stepUs = Math.floor((90 * DAY_MS * 1000) / settings.rows);
  for (let first = 0; first < settings.rows; first += CHUNK) {
    const count = Math.min(CHUNK, settings.rows - first);
    await conn.query(
      `INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor, created_at)
       ${seq(count)} SELECT ${lo} + ((n + ${first}) * 7919) % ${span},
              CASE WHEN (n + ${first}) % 20 = 0 THEN 1 WHEN (n + ${first}) % 50 = 1 THEN -2 ELSE -1 END,
              0,
              CASE WHEN (n + ${first}) % 20 = 0 THEN 'refund' WHEN (n + ${first}) % 50 = 1 THEN 'manual_adjustment' ELSE 'consumption' END,
              'system',
              NOW(3) - INTERVAL ((${settings.rows} - (n + ${first})) * ${stepUs}) MICROSECOND
         FROM seq`,
    );
  }
  // Explicit member ids above keep them contiguous, so every generated member_id exists.
  // Balances follow the ledger (balance = sum of deltas), so totals can be checked against members.
  await conn.query(
    `UPDATE members m JOIN (SELECT member_id, SUM(delta) AS total FROM member_quota_history GROUP BY member_id) s
        ON s.member_id = m.id SET m.quota_balance = s.total`,
  );
  await conn.query('ANALYZE TABLE members, member_quota_history');
  log(`seeded in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function timed(fn) {
  const started = process.hrtime.bigint();
  const result = await fn();
  return { ms: Number(process.hrtime.bigint() - started) / 1e6, result };
}

function table(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const fmt = (cells) =>
    cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ');
  return [fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...rows.map(fmt)].join('\n');
}

async function main() {
  for (const host of [settings.db.host, settings.redis.host]) {
    if (!LOOPBACK.has(host)) throw new Error(`the benchmark runs on loopback only; refusing host ${host}`);
  }
  const budgetSeconds = 1200 + settings.duration * 2;
  const guard = setTimeout(() => {
    log(`time limit of ${budgetSeconds} s reached; stopping`);
    cleanup().finally(() => process.exit(1));
  }, budgetSeconds * 1000);

  const admin = await mysql.createConnection({ ...settings.db, multipleStatements: false });
  database = `quota_bench_stats_${randomBytes(4).toString('hex')}`;
  await admin.query(`CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  log(`database ${database}`);

  const port = await freePort();
  const password = randomBytes(18).toString('base64url');
  const serviceEnv = {
    APP_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: settings.logLevel,
    DB_CONNECTION: 'mysql',
    DB_HOST: settings.db.host,
    DB_PORT: String(settings.db.port),
    DB_USERNAME: settings.db.user,
    DB_PASSWORD: settings.db.password,
    DB_DATABASE: database,
    REDIS_HOST: settings.redis.host,
    REDIS_PORT: String(settings.redis.port),
    REDIS_PREFIX: `bench-${database}`,
    JWT_SECRET: randomBytes(48).toString('base64url'),
    THROTTLE_LIMIT: '0',
    QUOTA_STATS_TTL: '300',
    QUOTA_ANALYTICS_INTERVAL_MS: '500',
    QUOTA_ANALYTICS_BATCH: '20000',
  };

  log('applying migrations');
  await runToCompletion(
    'migrations',
    path.join(ROOT, 'node_modules/typeorm/cli.js'),
    ['migration:run', '-d', 'dist/ormconfig.js'],
    serviceEnv,
  );
  await admin.query(`USE \`${database}\``);
  await seed(admin);
  await runToCompletion(
    'user:create',
    path.join(ROOT, 'dist/src/cli/main.js'),
    ['user:create', '--email', 'bench-admin@example.test', '--role', 'admin', '--password', password],
    serviceEnv,
  );

  const service = start('service', path.join(ROOT, 'dist/src/main.js'), [], serviceEnv, SERVICE_NODE_ARGS);
  const url = `http://127.0.0.1:${port}`;
  await waitUntil(
    async () => (await fetch(`${url}/api/v1/health/ready`)).status === 200,
    60_000,
    `service start (${service.stderr()})`,
  );
  const [[{ hi }]] = await admin.query('SELECT MAX(id) AS hi FROM member_quota_history');
  const catchUp = Date.now();
  log('waiting for the tail processor to fold the ledger into the rollups');
  await waitUntil(
    async () => {
      const [[state]] = await admin.query(
        "SELECT last_history_id FROM quota_analytics_state WHERE name = 'history_tail'",
      );
      return Number(state.last_history_id) >= Number(hi);
    },
    900_000,
    `the tail processor catching up (${service.stderr()})`,
  );
  const catchUpSeconds = (Date.now() - catchUp) / 1000;
  log(`caught up in ${catchUpSeconds.toFixed(1)} s`);

  const login = await fetch(`${url}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'bench-admin@example.test', password }),
  });
  if (login.status !== 200) throw new Error(`login failed with ${login.status}`);
  const token = (await login.json()).data.access_token;
  const headers = { authorization: `Bearer ${token}` };

  const rows = [];
  let checked = 'n/a';
  for (const days of [7, 30, 90]) {
    const to = new Date();
    const from = new Date(to.getTime() - days * DAY_MS);
    const query = `from=${from.toISOString()}&to=${to.toISOString()}`;
    const times = [];
    let body = null;
    for (let i = 0; i < settings.samples + 1; i++) {
      const { ms, result } = await timed(async () => {
        const res = await fetch(`${url}/api/v1/admin/quota/stats?${query}&fresh=true`, { headers });
        if (res.status !== 200) throw new Error(`stats answered ${res.status}`);
        return res.json();
      });
      if (i > 0) times.push(ms); // the first request warms the connection pool
      body = result;
    }
    times.sort((a, b) => a - b);
    const naive = await timed(() =>
      admin.query(
        `SELECT m.membership_type, h.reason, COUNT(*) AS n, SUM(ABS(h.delta)) AS units
           FROM member_quota_history h JOIN members m ON m.id = h.member_id
          WHERE h.created_at >= ? AND h.created_at < ? GROUP BY m.membership_type, h.reason`,
        [from, to],
      ),
    );
    // The answer must equal the straightforward join's (no membership changes in this data set).
    const want = {};
    for (const r of naive.result[0]) want[`${r.membership_type}|${r.reason}`] = [Number(r.n), Number(r.units)];
    const got = {};
    for (const t of body.data.membership_types) {
      for (const [reason, r] of Object.entries(t.by_reason)) got[`${t.membership_type}|${reason}`] = [r.count, r.units];
    }
    const same = JSON.stringify(Object.entries(want).sort()) === JSON.stringify(Object.entries(got).sort());
    rows.push([
      `uncached ${days}d (fresh=true)`,
      percentile(times, 50).toFixed(1),
      percentile(times, 99).toFixed(1),
      times[times.length - 1].toFixed(1),
      String(times.length),
      naive.ms.toFixed(0),
      same ? 'yes' : 'NO',
    ]);
    if (days === 30) {
      const [members] = await admin.query(
        'SELECT membership_type, COUNT(*) AS n, SUM(quota_balance) AS b FROM members GROUP BY membership_type',
      );
      const ok = members.every((m) => {
        const t = body.data.membership_types.find((x) => x.membership_type === m.membership_type);
        return t && t.members === Number(m.n) && t.total_balance === Number(m.b);
      });
      checked = ok ? 'equal' : 'DIFFERENT';
    }
  }

  // Cached: the default window, warmed once, then 64 connections. The liveness probe and a bare
  // node:http server sending the same body show how far below that this machine can go at all.
  const warm = await fetch(`${url}/api/v1/admin/quota/stats`, { headers });
  const statsBody = await warm.text();
  const baselinePort = await freePort();
  start('baseline', path.join(__dirname, 'baseline-server.js'), [], {
    PORT: String(baselinePort),
    BASELINE_STATS_BODY: statsBody,
  });
  const baselineUrl = `http://127.0.0.1:${baselinePort}`;
  await waitUntil(async () => (await fetch(`${baselineUrl}/stats`)).status === 200, 10_000, 'the baseline');
  const drive = (target) =>
    new Promise((resolve, reject) => {
      const instance = autocannon(
        {
          url: target,
          headers,
          connections: settings.connections,
          duration: settings.duration,
          pipelining: 1,
          timeout: 10,
        },
        (err, result) => (err ? reject(err) : resolve(result)),
      );
      instance.on('error', () => undefined);
    });
  const cached = await drive(`${url}/api/v1/admin/quota/stats`);
  const probe = await drive(`${url}/api/v1/health/live`);
  const bare = await drive(`${baselineUrl}/stats`);
  for (const [name, r] of [
    [`cached, ${settings.connections} connections`, cached],
    [`ref: service /health/live`, probe],
    [`ref: node:http same body`, bare],
  ]) {
    rows.push([
      name,
      String(r.latency.p50),
      String(r.latency.p99),
      String(r.latency.max),
      `${r.requests.total} (${r.requests.average.toFixed(0)}/s)`,
      '-',
      r.non2xx === 0 && r.errors === 0 ? 'all 2xx' : `${r.non2xx} non-2xx, ${r.errors} errors`,
    ]);
  }
  await admin.end();
  clearTimeout(guard);

  const uncachedWorst = Math.max(...rows.slice(0, 3).map((r) => Number(r[2])));
  const out = [
    `quota-service stats benchmark: ${settings.members} members, ${settings.rows} ledger rows over 90 days (+ one initial_grant per member), ` +
      `${settings.samples} uncached requests per window, cached run ${settings.duration} s`,
    `rollups caught up with the ledger (ids up to ${Number(hi)}) in ${catchUpSeconds.toFixed(1)} s after start`,
    '',
    table(['scenario', 'p50 ms', 'p99 ms', 'max ms', 'requests', 'naive join ms', 'same as naive join'], rows),
    '',
    `uncached p99 (worst window) ${uncachedWorst.toFixed(1)} ms (target < 300: ${uncachedWorst < 300 ? 'met' : 'NOT met'}); ` +
      `cached p99 ${cached.latency.p99} ms (target < 5: ${cached.latency.p99 < 5 ? 'met' : 'NOT met'})`,
    `members and balances per type vs the members table: ${checked}`,
  ];
  process.stdout.write(`${out.join('\n')}\n`);
}

async function cleanup() {
  await stopAll();
  await dropDatabase(settings, database, log);
}

runBench(main, cleanup);
