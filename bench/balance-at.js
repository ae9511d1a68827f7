'use strict';
/**
 * node bench/balance-at.js (BENCH_ONLY=at npm run bench): balances in time on a long history. The
 * built service (production mode, MariaDB/MySQL + Redis) with one member whose ledger has
 * BENCH_AT_ROWS rows (default 100,000) over the last 30 days, beside BENCH_AT_NOISE_ROWS rows
 * (100,000) of 1,000 other members in the same period, and a hold every 10 minutes. Measures over
 * HTTP with autocannon:
 * - GET /api/v1/quota/members/:id?at=<a random instant of the 30 days>,
 * - GET /api/v1/admin/quota/members/:id/statement (default window: every row of the member),
 * - the same with a 1-day window at a random day,
 * - GET /api/v1/quota/members/:id without `at`, for reference;
 * and the SQL of each (the repositories' own statements, taken from dist/) sent straight to the
 * database BENCH_AT_SQL_SAMPLES times. Before the reads, a worker process (APP_ROLE=worker) runs
 * the ledger tail processor until its watermark reaches the last seeded row, so the statements'
 * whole days come from the daily rollups as in production; it is stopped before anything is
 * timed. Checks the answers against the seeded ledger.
 * Loopback only, on a database created for the run and dropped afterwards, within a time limit.
 *
 * Settings: BENCH_AT_ROWS, BENCH_AT_NOISE_ROWS, BENCH_AT_SQL_SAMPLES (200), BENCH_DURATION (s per
 * HTTP scenario, 8), BENCH_CONNECTIONS (16), BENCH_KEEP_DB=1, BENCH_LOG_LEVEL (warn),
 * DB_HOST/DB_PORT/DB_USERNAME/DB_PASSWORD, REDIS_HOST/REDIS_PORT. Needs `npm run build` first (dist/).
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
  createUser,
  waitReady,
  loginToken,
  servers,
} = require('./lib');

const log = logger('bench:at');
const { start, runToCompletion, stopAll } = processes();
const env = process.env;

const settings = {
  rows: Math.max(2, num('BENCH_AT_ROWS', 100_000)),
  noiseRows: num('BENCH_AT_NOISE_ROWS', 100_000),
  sqlSamples: Math.max(1, num('BENCH_AT_SQL_SAMPLES', 200)),
  duration: num('BENCH_DURATION', 8),
  connections: num('BENCH_CONNECTIONS', 16),
  logLevel: env.BENCH_LOG_LEVEL || 'warn',
  keepDb: env.BENCH_KEEP_DB === '1',
  ...servers(),
};

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);
const DAY_MS = 86_400_000;
const SPAN_DAYS = 30;
const OTHERS = 1000;
let database = null;

const seq = (n) => `WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n < ${n - 1}) `;

/**
 * Set-based seeding. The bench member's rows: an initial grant of `rows` units, then mostly
 * consumption of 1, a refund of 1 every 20th row and an adjustment of −2 every 50th, one every
 * 30 days / rows, with balance_after the running sum (a window function) and ids in time order.
 */
async function seed(conn, spanStart) {
  const started = Date.now();
  await conn.query('SET SESSION max_recursive_iterations = 10000000');
  await conn.query("INSERT INTO member_quota_config (membership_type, max_quota) VALUES ('bench', 100)");
  await conn.query(
    `INSERT INTO members (external_id, membership_type, quota_balance, created_at, updated_at)
     VALUES ('bench-long', 'bench', 0, ?, ?)`,
    [new Date(spanStart - 1000), new Date(spanStart - 1000)],
  );
  const [[{ id: memberId }]] = await conn.query("SELECT id FROM members WHERE external_id = 'bench-long'");
  await conn.query(
    `INSERT INTO members (external_id, membership_type, quota_balance, created_at, updated_at)
     ${seq(OTHERS)} SELECT CONCAT('bench-', n), 'bench', 0, ?, ? FROM seq`,
    [new Date(spanStart - 1000), new Date(spanStart - 1000)],
  );
  const stepUs = Math.floor((SPAN_DAYS * DAY_MS * 1000) / settings.rows);
  log(`seeding ${settings.rows} ledger rows of one member`);
  await conn.query(
    `INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor, created_at)
     ${seq(settings.rows)}, rows_of AS (
       SELECT n,
              CASE WHEN n = 0 THEN ${settings.rows} WHEN n % 20 = 0 THEN 1 WHEN n % 50 = 1 THEN -2 ELSE -1 END AS delta,
              CASE WHEN n = 0 THEN 'initial_grant' WHEN n % 20 = 0 THEN 'refund'
                   WHEN n % 50 = 1 THEN 'manual_adjustment' ELSE 'consumption' END AS reason
         FROM seq)
     SELECT ?, delta, SUM(delta) OVER (ORDER BY n ROWS UNBOUNDED PRECEDING), reason, 'system',
            TIMESTAMPADD(MICROSECOND, n * ${stepUs}, ?)
       FROM rows_of ORDER BY n`,
    [memberId, new Date(spanStart)],
  );
  await conn.query(
    'UPDATE members SET quota_balance = (SELECT SUM(delta) FROM member_quota_history WHERE member_id = ?) WHERE id = ?',
    [memberId, memberId],
  );
  if (settings.noiseRows > 0) {
    log(`seeding ${settings.noiseRows} ledger rows of ${OTHERS} other members`);
    const noiseStepUs = Math.floor((SPAN_DAYS * DAY_MS * 1000) / settings.noiseRows);
    await conn.query(
      `INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor, created_at)
       ${seq(settings.noiseRows)} SELECT m.id, 0, 0, 'consumption', 'system', TIMESTAMPADD(MICROSECOND, n * ${noiseStepUs}, ?)
         FROM seq JOIN members m ON m.external_id = CONCAT('bench-', n % ${OTHERS})`,
      [new Date(spanStart)],
    );
  }
  // A hold every 10 minutes, committed 5 s later; the last two still open.
  const holds = (SPAN_DAYS * DAY_MS) / 600_000;
  await conn.query(
    `INSERT INTO quota_holds (member_id, amount, status, committed_amount, released_amount, created_by, created_at, expires_at, settled_at)
     ${seq(holds)} SELECT ?, 3, 'committed', 3, 0, 'bench', TIMESTAMPADD(SECOND, n * 600, ?),
            TIMESTAMPADD(SECOND, n * 600 + 300, ?), TIMESTAMPADD(SECOND, n * 600 + 5, ?) FROM seq`,
    [memberId, new Date(spanStart), new Date(spanStart), new Date(spanStart)],
  );
  const openAt = new Date(Date.now() - 60_000);
  await conn.query(
    `INSERT INTO quota_holds (member_id, amount, status, created_by, created_at, expires_at)
     VALUES (?, 4, 'held', 'bench', ?, ?), (?, 6, 'held', 'bench', ?, ?)`,
    [
      memberId,
      openAt,
      new Date(openAt.getTime() + 3_600_000),
      memberId,
      openAt,
      new Date(openAt.getTime() + 3_600_000),
    ],
  );
  await conn.query('UPDATE members SET quota_held = 10 WHERE id = ?', [memberId]);
  await conn.query('ANALYZE TABLE members, member_quota_history, quota_holds');
  log(`seeded in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return String(memberId);
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function table(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const fmt = (cells) =>
    cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ');
  return [fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...rows.map(fmt)].join('\n');
}

const dist = (file) => require(path.join(ROOT, 'dist/src', file));

/** The SQL the service's repositories send (from dist/), captured from a session that runs nothing. */
async function repositorySql(call) {
  const { BalancesInTimeRepository } = dist('quota/balances-in-time.repository.js');
  const { MemberDailyRepository } = dist('analytics/member-daily.repository.js');
  const { dialectOf } = dist('database/dialect.js');
  const captured = [];
  const session = {
    sql: dialectOf({ options: { type: 'mysql' } }),
    rows: (sql, params) => {
      captured.push({ sql, params });
      return Promise.resolve([{ balance: 0, held: 0 }]);
    },
  };
  await call({ balances: new BalancesInTimeRepository(), daily: new MemberDailyRepository() }, session);
  return captured;
}

/**
 * A statement's reads after the member's row, the watermark and the gaps (three primary-key
 * lookups): its balances, then its totals as StatementService splits the window.
 */
function statementSql(memberId, watermark, from, to) {
  const { statementDays } = dist('analytics/statement.service.js');
  return repositorySql(async ({ balances, daily }, s) => {
    await balances.windowBalances(s, memberId, from, to);
    const { whole, edges } = statementDays(from, to);
    if (whole) {
      await daily.dailyBetween(s, memberId, whole.from, whole.to);
      await daily.unfoldedBetween(s, memberId, watermark, [], whole.from, whole.to);
    }
    for (const edge of edges) await daily.ledgerBetween(s, memberId, edge.from, edge.to);
  });
}

/** Every sample runs the scenario's statements one after the other; its time is theirs together. */
async function sqlTimes(conn, makeStatements) {
  const times = [];
  for (let i = 0; i < settings.sqlSamples + 1; i++) {
    const statements = await makeStatements();
    const started = process.hrtime.bigint();
    for (const statement of statements) await conn.query(statement.sql, statement.params);
    if (i > 0) times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  return times.sort((a, b) => a - b);
}

/** Runs a worker process until the tail processor's watermark reaches the last ledger row, then stops it. */
async function foldLedger(conn, serviceEnv) {
  const started = Date.now();
  const [[{ last }]] = await conn.query('SELECT MAX(id) AS last FROM member_quota_history');
  const worker = start('worker', path.join(ROOT, 'dist/src/main.js'), [], serviceEnv, SERVICE_NODE_ARGS);
  const watermark = async () => {
    const [[state]] = await conn.query(
      "SELECT last_history_id AS id FROM quota_analytics_state WHERE name = 'history_tail'",
    );
    return String(state.id);
  };
  await waitUntil(async () => (await watermark()) === String(last), 300_000, `the tail processor (${worker.stderr()})`);
  worker.child.kill('SIGTERM');
  await worker.exited;
  const [[{ days }]] = await conn.query('SELECT COUNT(*) AS days FROM quota_member_daily');
  log(`ledger folded in ${((Date.now() - started) / 1000).toFixed(1)} s (${days} daily rollup rows)`);
  return watermark();
}

async function main() {
  for (const host of [settings.db.host, settings.redis.host]) {
    if (!LOOPBACK.has(host)) throw new Error(`the benchmark runs on loopback only; refusing host ${host}`);
  }
  const budgetSeconds = 600 + settings.duration * 8;
  const guard = setTimeout(() => {
    log(`time limit of ${budgetSeconds} s reached; stopping`);
    cleanup().finally(() => process.exit(1));
  }, budgetSeconds * 1000);

  const admin = await mysql.createConnection({ ...settings.db, multipleStatements: false, timezone: 'Z' });
  database = `quota_bench_at_${randomBytes(4).toString('hex')}`;
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
    // The API only: the seeded ledger is folded before (foldLedger), nothing runs beside the reads.
    APP_ROLE: 'api',
  };

  log('applying migrations');
  await runToCompletion(
    'migrations',
    path.join(ROOT, 'node_modules/typeorm/cli.js'),
    ['migration:run', '-d', 'dist/ormconfig.js'],
    serviceEnv,
  );
  await admin.query(`USE \`${database}\``);
  await admin.query("SET time_zone = '+00:00'");
  const spanStart = Date.now() - SPAN_DAYS * DAY_MS - 60_000;
  const memberId = await seed(admin, spanStart);
  const spanEnd = spanStart + SPAN_DAYS * DAY_MS;
  const watermark = await foldLedger(admin, {
    ...serviceEnv,
    APP_ROLE: 'worker',
    PORT: String(await freePort()),
    QUOTA_ANALYTICS_INTERVAL_MS: '100',
    QUOTA_ANALYTICS_LAG_MS: '1000',
  });
  const email = 'bench-admin@example.test';
  await createUser(runToCompletion, serviceEnv, { email, role: 'admin', password });

  const service = start('service', path.join(ROOT, 'dist/src/main.js'), [], serviceEnv, SERVICE_NODE_ARGS);
  const url = `http://127.0.0.1:${port}`;
  await waitReady(url, 60_000, `service start (${service.stderr()})`);
  const token = await loginToken(url, email, password);
  const headers = { authorization: `Bearer ${token}` };

  // Answers checked against the seeded ledger before anything is timed.
  const [[member]] = await admin.query('SELECT quota_balance FROM members WHERE id = ?', [memberId]);
  const full = await (await fetch(`${url}/api/v1/admin/quota/members/${memberId}/statement`, { headers })).json();
  const units = Object.values(full.data.totals).reduce((sum, t) => sum + t.units, 0);
  const count = Object.values(full.data.totals).reduce((sum, t) => sum + t.count, 0);
  const probeAt = new Date(spanStart + 17.3 * DAY_MS);
  const [[want]] = await admin.query(
    'SELECT balance_after FROM member_quota_history WHERE member_id = ? AND created_at <= ? ORDER BY id DESC LIMIT 1',
    [memberId, probeAt],
  );
  const at = await (
    await fetch(`${url}/api/v1/quota/members/${memberId}?at=${probeAt.toISOString()}`, { headers })
  ).json();
  // A window of 2.5 days: one whole day or two from the rollups, the partial days from the ledger.
  const dayFrom = new Date(spanStart + 11.6 * DAY_MS);
  const dayTo = new Date(spanStart + 14.1 * DAY_MS);
  const day = await (
    await fetch(
      `${url}/api/v1/admin/quota/members/${memberId}/statement?from=${dayFrom.toISOString()}&to=${dayTo.toISOString()}`,
      { headers },
    )
  ).json();
  const [ledgerDay] = await admin.query(
    `SELECT reason, COUNT(*) AS n, SUM(delta) AS units FROM member_quota_history
      WHERE member_id = ? AND created_at >= ? AND created_at <= ? GROUP BY reason`,
    [memberId, dayFrom, dayTo],
  );
  const checks = {
    window:
      ledgerDay.length === Object.keys(day.data.totals).length &&
      ledgerDay.every(
        (r) => day.data.totals[r.reason].count === Number(r.n) && day.data.totals[r.reason].units === Number(r.units),
      ),
    statement:
      full.data.opening_balance === 0 &&
      full.data.closing_balance === Number(member.quota_balance) &&
      full.data.opening_balance + units === full.data.closing_balance &&
      count === settings.rows &&
      full.data.held === 10,
    at: at.data && at.data.balance === Number(want.balance_after),
  };
  log(`checks: ${JSON.stringify(checks)}`);

  const randomInstant = () => new Date(spanStart + Math.random() * (spanEnd - spanStart));
  const randomDay = () => {
    const from = new Date(spanStart + Math.random() * (spanEnd - spanStart - DAY_MS));
    return { from, to: new Date(from.getTime() + DAY_MS) };
  };
  const drive = (connections, pathOf) =>
    new Promise((resolve, reject) => {
      const instance = autocannon(
        {
          url,
          headers,
          connections,
          duration: settings.duration,
          pipelining: 1,
          timeout: 10,
          requests: [{ method: 'GET', setupRequest: (req) => ({ ...req, path: pathOf() }) }],
        },
        (err, result) => (err ? reject(err) : resolve(result)),
      );
      instance.on('error', () => undefined);
    });

  const balancePath = `/api/v1/quota/members/${memberId}`;
  const statementPath = `/api/v1/admin/quota/members/${memberId}/statement`;
  const scenarios = [
    {
      name: 'balance now (reference)',
      path: () => balancePath,
      sql: null,
    },
    {
      name: 'balance ?at= random instant',
      path: () => `${balancePath}?at=${randomInstant().toISOString()}`,
      sql: () => repositorySql(({ balances }, s) => balances.balanceAt(s, memberId, randomInstant())),
      check: checks.at,
    },
    {
      name: `statement, default window (${settings.rows} rows)`,
      path: () => statementPath,
      sql: () => statementSql(memberId, watermark, new Date(spanStart - 1000), new Date()),
      check: checks.statement,
    },
    {
      name: 'statement, 1-day window',
      path: () => {
        const { from, to } = randomDay();
        return `${statementPath}?from=${from.toISOString()}&to=${to.toISOString()}`;
      },
      sql: () => {
        const { from, to } = randomDay();
        return statementSql(memberId, watermark, from, to);
      },
      check: checks.window,
    },
  ];

  const rows = [];
  for (const scenario of scenarios) {
    // Warm-up: the connection pools and the pages of the index.
    for (let i = 0; i < 20; i++) await fetch(`${url}${scenario.path()}`, { headers });
    const result = await drive(settings.connections, scenario.path);
    const sql = scenario.sql ? await sqlTimes(admin, scenario.sql) : null;
    rows.push([
      scenario.name,
      result.requests.average.toFixed(0),
      String(result.latency.p50),
      String(result.latency.p99),
      sql ? percentile(sql, 50).toFixed(2) : '-',
      sql ? percentile(sql, 99).toFixed(2) : '-',
      result.non2xx === 0 && result.errors === 0 ? 'all 2xx' : `${result.non2xx} non-2xx, ${result.errors} errors`,
      scenario.check === undefined ? '-' : scenario.check ? 'yes' : 'NO',
    ]);
  }
  await admin.end();
  clearTimeout(guard);

  const out = [
    `quota-service balances in time: one member with ${settings.rows} ledger rows over ${SPAN_DAYS} days ` +
      `(+ ${settings.noiseRows} rows of ${OTHERS} other members, a hold every 10 min), ` +
      `${settings.connections} connections for ${settings.duration} s per scenario, SQL alone ${settings.sqlSamples} times`,
    '',
    table(['scenario', 'req/s', 'p50 ms', 'p99 ms', 'SQL p50 ms', 'SQL p99 ms', 'answers', 'checked'], rows),
  ];
  process.stdout.write(`${out.join('\n')}\n`);
  if (!checks.statement || !checks.at || !checks.window) process.exitCode = 1;
}

async function cleanup() {
  await stopAll();
  await dropDatabase(settings, database, log);
}

runBench(main, cleanup);
