'use strict';
/**
 * node bench/holds.js (BENCH_ONLY=holds npm run bench): what a hold costs against a plain consume.
 * The built service in production mode on MariaDB/MySQL + Redis, set up as bench/run.js sets it up
 * (the same members, pool size, throttle limit and connection count), driven in the same run by one
 * load loop: BENCH_CONNECTIONS virtual users, each on its own keep-alive connection, each running
 * one operation after another, every request with its own Idempotency-Key:
 *
 *   consume       POST /quota/members/:id/consume {amount:1}
 *   hold-commit   POST /quota/members/:id/holds {amount:2}, then POST /quota/holds/:hold_id/commit {amount:1}
 *   hold-release  POST /quota/members/:id/holds {amount:2}, then POST /quota/holds/:hold_id/release
 *
 * An operation's latency is its whole round trip (both requests for a hold). autocannon cannot
 * carry the hold id from one request to the next, so every scenario, consume included, runs on the
 * loop, and the ratios compare like with like; one further consume run with autocannon, exactly as
 * bench/run.js drives it, ties the loop's figures to that benchmark's. Afterwards the ledger is
 * checked: balance = sum of deltas for every member, no units left held, every hold settled once
 * with its ledger rows, and no 5xx answer anywhere. Each run also reports the CPU the load generator
 * (this process) used and the service's CPU time per operation, which other work on a shared
 * machine moves far less than throughput; the output ends with the load average before and after.
 * Loopback only, on a database created for the run and dropped afterwards, within a hard time limit.
 *
 * Settings (environment): BENCH_DURATION (s, 15), BENCH_WARMUP (s, 3), BENCH_CONNECTIONS (64),
 * BENCH_MEMBERS (100000), BENCH_ROUNDS (1; rounds alternate the order of the scenarios),
 * BENCH_HOLDS_SCENARIOS (consume,hold-commit,hold-release,consume-autocannon; consume and
 * hold-commit are always run), BENCH_PICKS (uniform; `uniform,hot` adds run.js's one hot member),
 * BENCH_POOL_SIZE (10), BENCH_THROTTLE_LIMIT (1000000 per minute), BENCH_LOG_LEVEL (info),
 * BENCH_KEEP_DB=1, BENCH_SERVICE_NODE_ARGS, BENCH_SERVICE_ROLE (all), DB_HOST/DB_PORT/DB_USERNAME/
 * DB_PASSWORD, REDIS_HOST/REDIS_PORT. Needs `npm run build` first (dist/).
 */
const { randomBytes } = require('node:crypto');
const http = require('node:http');
const os = require('node:os');
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
  createUser,
  waitReady,
  loginToken,
  servers,
} = require('./lib');

const log = logger('bench:holds');
const { start, runToCompletion, stopAll } = processes();

const env = process.env;

const ALL_SCENARIOS = ['consume', 'hold-commit', 'hold-release', 'consume-autocannon'];
const REQUIRED_SCENARIOS = ['consume', 'hold-commit'];
const ALL_PICKS = ['uniform', 'hot'];

function listSetting(name, fallback, allowed) {
  const raw = env[name] === undefined || env[name] === '' ? fallback : env[name];
  const list = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const item of list) {
    if (!allowed.includes(item)) throw new Error(`${name}: ${item} is not one of ${allowed.join(', ')}`);
  }
  return list;
}

const settings = {
  duration: num('BENCH_DURATION', 15),
  warmup: num('BENCH_WARMUP', 3),
  connections: Math.max(1, num('BENCH_CONNECTIONS', 64)),
  members: Math.max(1, num('BENCH_MEMBERS', 100_000)),
  rounds: Math.max(1, num('BENCH_ROUNDS', 1)),
  poolSize: num('BENCH_POOL_SIZE', 10),
  throttleLimit: String(num('BENCH_THROTTLE_LIMIT', 1_000_000)),
  logLevel: env.BENCH_LOG_LEVEL || 'info',
  keepDb: env.BENCH_KEEP_DB === '1',
  role: env.BENCH_SERVICE_ROLE || 'all',
  // Kept in ALL_SCENARIOS order, with the two the ratio needs always present.
  scenarios: (() => {
    const chosen = listSetting('BENCH_HOLDS_SCENARIOS', ALL_SCENARIOS.join(','), ALL_SCENARIOS);
    return ALL_SCENARIOS.filter((s) => REQUIRED_SCENARIOS.includes(s) || chosen.includes(s));
  })(),
  picks: listSetting('BENCH_PICKS', 'uniform', ALL_PICKS),
  ...servers(),
};

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);
const UNIFORM_BALANCE = 1_000_000;
const HOT_BALANCE = 2_000_000_000;
const REQUEST_TIMEOUT_MS = 10_000;
const HOLD_AMOUNT = 2;
const COMMIT_AMOUNT = 1;
/** The kernel's clock ticks per second for /proc/<pid>/stat (getconf CLK_TCK; 100 on Linux here). */
const CLOCK_TICKS = (() => {
  try {
    return Number(require('node:child_process').execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })) || 100;
  } catch {
    return 100;
  }
})();
let database = null;

/** The same members as bench/run.js: one 'bench' type, the first member hot with a large balance. */
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

/** Every answer of the whole run by step and status, for the 5xx check and the client-side totals. */
const totals = {};
function countAnswer(step, status, n = 1) {
  const byStatus = (totals[step] ??= {});
  byStatus[status] = (byStatus[status] || 0) + n;
}

/** One POST on a keep-alive agent: resolves with { status, body } or { status: 'error'|'timeout' }. */
function post(agent, target, { path: requestPath, body, key, token }) {
  return new Promise((resolve) => {
    const headers = { authorization: `Bearer ${token}`, 'idempotency-key': key };
    if (body === undefined) {
      headers['content-length'] = '0';
    } else {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(body));
    }
    let settled = false;
    const done = (value) => {
      if (!settled) {
        settled = true;
        resolve(value);
      }
    };
    const req = http.request(
      { agent, host: target.host, port: target.port, method: 'POST', path: requestPath, headers },
      (res) => {
        const chunks = [];
        res.on('data', (chunk) => chunks.push(chunk));
        res.on('end', () => done({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', () => done({ status: 'error' }));
      },
    );
    req.setTimeout(REQUEST_TIMEOUT_MS, () => {
      req.destroy();
      done({ status: 'timeout' });
    });
    req.on('error', () => done({ status: 'error' }));
    req.end(body);
  });
}

const ok = (status) => typeof status === 'number' && status >= 200 && status < 300;

/**
 * The operations, each a chain of requests; an operation counts as done only if every request in
 * it was answered 2xx. `step` names each request for the status totals.
 */
const operations = {
  async consume(ctx, memberId) {
    const r = await ctx.send('consume', {
      path: `/api/v1/quota/members/${memberId}/consume`,
      body: '{"amount":1}',
    });
    return ok(r.status);
  },
  'hold-commit': (ctx, memberId) =>
    holdThen(ctx, memberId, 'commit', (holdId) => ({
      path: `/api/v1/quota/holds/${holdId}/commit`,
      body: `{"amount":${COMMIT_AMOUNT}}`,
    })),
  'hold-release': (ctx, memberId) =>
    holdThen(ctx, memberId, 'release', (holdId) => ({ path: `/api/v1/quota/holds/${holdId}/release` })),
};

async function holdThen(ctx, memberId, settleStep, settleRequest) {
  const made = await ctx.send('hold', {
    path: `/api/v1/quota/members/${memberId}/holds`,
    body: `{"amount":${HOLD_AMOUNT}}`,
  });
  if (made.status !== 201) return false;
  const holdId = JSON.parse(made.body).data.hold_id;
  const settled = await ctx.send(settleStep, settleRequest(holdId));
  return ok(settled.status);
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/**
 * settings.connections virtual users, each on its own keep-alive connection, running `operation`
 * back to back for `seconds`; operations begun before the end run to completion (so no hold is
 * left open). Latencies in ms, per operation and per request step.
 */
async function loop({ target, token, operation, pick, seconds }) {
  const agent = new http.Agent({
    keepAlive: true,
    maxSockets: settings.connections,
    maxFreeSockets: settings.connections,
  });
  const runId = randomBytes(6).toString('hex');
  let counter = 0;
  const opLatencies = [];
  const stepLatencies = {};
  const statuses = {};
  let requests = 0;
  let failedOps = 0;
  const ctx = {
    async send(step, request) {
      const t0 = process.hrtime.bigint();
      const r = await post(agent, target, { ...request, key: `${runId}-${counter++}`, token });
      (stepLatencies[step] ??= []).push(Number(process.hrtime.bigint() - t0) / 1e6);
      requests++;
      const label = `${step} ${r.status}`;
      statuses[label] = (statuses[label] || 0) + 1;
      countAnswer(step, r.status);
      return r;
    },
  };
  const started = process.hrtime.bigint();
  const deadline = Date.now() + seconds * 1000;
  const user = async () => {
    while (Date.now() < deadline) {
      const t0 = process.hrtime.bigint();
      const done = await operation(ctx, pick());
      if (done) opLatencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      else failedOps++;
    }
  };
  await Promise.all(Array.from({ length: settings.connections }, user));
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  agent.destroy();
  opLatencies.sort((a, b) => a - b);
  const steps = {};
  for (const [step, values] of Object.entries(stepLatencies)) {
    values.sort((a, b) => a - b);
    steps[step] = { p50: percentile(values, 50), p99: percentile(values, 99) };
  }
  return {
    ops: opLatencies.length,
    failedOps,
    opsPerSecond: opLatencies.length / elapsed,
    rps: requests / elapsed,
    p50: percentile(opLatencies, 50),
    p99: percentile(opLatencies, 99),
    steps,
    statuses,
  };
}

/** Consume exactly as bench/run.js drives it (autocannon, pipelining 1, a unique key each). */
function autocannonConsume({ target, token, pick, seconds }) {
  const runId = randomBytes(6).toString('hex');
  let counter = 0;
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: `http://${target.host}:${target.port}`,
        connections: settings.connections,
        duration: seconds,
        pipelining: 1,
        timeout: 10,
        requests: [
          {
            method: 'POST',
            setupRequest: (req) => ({
              ...req,
              path: `/api/v1/quota/members/${pick()}/consume`,
              headers: {
                authorization: `Bearer ${token}`,
                'content-type': 'application/json',
                'idempotency-key': `${runId}-${counter++}`,
              },
              body: '{"amount":1}',
            }),
          },
        ],
      },
      (err, result) => {
        if (err) return reject(err);
        const statuses = {};
        for (const [code, { count }] of Object.entries(result.statusCodeStats || {})) {
          statuses[`consume ${code}`] = count;
          countAnswer('consume (autocannon)', Number(code), count);
        }
        const failures = result.errors + result.timeouts;
        if (failures > 0) statuses['consume error'] = failures;
        if (failures > 0) countAnswer('consume (autocannon)', 'error', failures);
        resolve({
          ops: result['2xx'],
          failedOps: result.non2xx + failures,
          opsPerSecond: result.requests.average,
          rps: result.requests.average,
          p50: result.latency.p50,
          p99: result.latency.p99,
          steps: {},
          statuses,
        });
      },
    );
    instance.on('error', () => undefined);
  });
}

/** CPU seconds a process has used so far (user + system, from /proc); NaN where /proc is not available. */
function cpuSeconds(pid) {
  try {
    const stat = require('node:fs').readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/**
 * One measured run, with the CPU the load generator (this process) used, as a share of one core,
 * and the service's CPU time per completed operation: unlike throughput, the latter hardly moves
 * when other work shares the machine.
 */
async function measure(scenario, options) {
  const cpu = process.cpuUsage();
  const serviceCpu = cpuSeconds(options.servicePid);
  const started = process.hrtime.bigint();
  const result = await (scenario === 'consume-autocannon'
    ? autocannonConsume(options)
    : loop({ ...options, operation: operations[scenario] }));
  const used = process.cpuUsage(cpu);
  const wallSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  const serviceSeconds = cpuSeconds(options.servicePid) - serviceCpu;
  return {
    ...result,
    clientCpu: (used.user + used.system) / 1e6 / wallSeconds,
    serviceCpu: serviceSeconds / wallSeconds,
    serviceMsPerOp: result.ops > 0 ? (serviceSeconds * 1000) / result.ops : NaN,
  };
}

const ms = (value) => (Number.isFinite(value) ? value.toFixed(1) : '-');

function table(rows) {
  const header = [
    'scenario',
    'members',
    'ops/s',
    'req/s',
    'p50 ms',
    'p99 ms',
    'ops',
    'failed ops',
    'client CPU',
    'service CPU',
    'service CPU ms/op',
    'per request p50/p99 ms',
  ];
  const lines = rows.map((r) => [
    r.label,
    r.pick,
    r.opsPerSecond.toFixed(0),
    r.rps.toFixed(0),
    ms(r.p50),
    ms(r.p99),
    String(r.ops),
    String(r.failedOps),
    `${(r.clientCpu * 100).toFixed(0)} %`,
    `${(r.serviceCpu * 100).toFixed(0)} %`,
    Number.isFinite(r.serviceMsPerOp) ? r.serviceMsPerOp.toFixed(2) : '-',
    Object.entries(r.steps)
      .map(([step, s]) => `${step} ${ms(s.p50)}/${ms(s.p99)}`)
      .join(', ') || '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const left = new Set([0, 1, 11]);
  const fmt = (cells) =>
    cells
      .map((c, i) => (left.has(i) ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  return [fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...lines.map(fmt)].join('\n');
}

/** The ledger after the runs; each check is [description, passed, detail]. */
async function verifyLedger(conn, expected) {
  const checks = [];
  const [[sums]] = await conn.query(
    `SELECT COUNT(*) AS checked, COALESCE(SUM(m.quota_balance <> COALESCE(s.total, 0)), 0) AS mismatches
       FROM members m LEFT JOIN (SELECT member_id, SUM(delta) AS total FROM member_quota_history GROUP BY member_id) s
         ON s.member_id = m.id`,
  );
  checks.push([
    'balance = sum of deltas for every member',
    Number(sums.mismatches) === 0,
    `${sums.checked} members checked, ${Number(sums.mismatches)} mismatches`,
  ]);

  const [[held]] = await conn.query(
    'SELECT COALESCE(SUM(quota_held), 0) AS units, COALESCE(SUM(quota_held <> 0), 0) AS members FROM members',
  );
  checks.push([
    'members.quota_held = 0 everywhere',
    Number(held.units) === 0,
    `${Number(held.units)} units held by ${Number(held.members)} members`,
  ]);

  const [statusRows] = await conn.query(
    'SELECT status, COUNT(*) AS n, SUM(amount) AS amount, SUM(committed_amount) AS committed, SUM(released_amount) AS released FROM quota_holds GROUP BY status',
  );
  const byStatus = Object.fromEntries(
    statusRows.map((r) => [
      r.status,
      { n: Number(r.n), amount: Number(r.amount), committed: Number(r.committed), released: Number(r.released) },
    ]),
  );
  const count = (status) => (byStatus[status] ? byStatus[status].n : 0);
  const holds = Object.values(byStatus).reduce((a, s) => a + s.n, 0);
  checks.push([
    'no hold left open',
    count('held') === 0 && count('expired') === 0,
    Object.entries(byStatus)
      .map(([status, s]) => `${status} ${s.n}`)
      .join(', ') || 'no holds',
  ]);
  const committed = byStatus.committed;
  const released = byStatus.released;
  checks.push([
    `committed holds: ${COMMIT_AMOUNT} committed and ${HOLD_AMOUNT - COMMIT_AMOUNT} given back each`,
    !committed ||
      (committed.committed === committed.n * COMMIT_AMOUNT &&
        committed.released === committed.n * (HOLD_AMOUNT - COMMIT_AMOUNT)),
    committed ? `${committed.committed} committed, ${committed.released} given back over ${committed.n}` : 'none',
  ]);
  checks.push([
    'released holds: everything given back',
    !released || (released.committed === 0 && released.released === released.n * HOLD_AMOUNT),
    released ? `${released.committed} committed, ${released.released} given back over ${released.n}` : 'none',
  ]);
  checks.push([
    'holds in the database = holds the client saw made (201)',
    holds === expected.holdsMade,
    `${holds} in quota_holds, ${expected.holdsMade} answered 201`,
  ]);
  checks.push([
    'committed / released holds = commits / releases answered 200',
    count('committed') === expected.commits && count('released') === expected.releases,
    `${count('committed')}/${count('released')} in quota_holds, ${expected.commits}/${expected.releases} answered 200`,
  ]);

  // Every hold has its `hold` row, every settled hold one `hold_release`, every commit one `consumption`.
  const [reasonRows] = await conn.query(
    'SELECT reason, COUNT(*) AS n, COUNT(DISTINCT hold_id) AS holds, SUM(delta) AS delta FROM member_quota_history WHERE hold_id IS NOT NULL GROUP BY reason',
  );
  const byReason = Object.fromEntries(
    reasonRows.map((r) => [r.reason, { n: Number(r.n), holds: Number(r.holds), delta: Number(r.delta) }]),
  );
  const rowsOf = (reason) => byReason[reason] || { n: 0, holds: 0, delta: 0 };
  const settledHolds = count('committed') + count('released') + count('expired');
  checks.push([
    'ledger rows per hold: one hold, one hold_release, one consumption per commit',
    rowsOf('hold').n === holds &&
      rowsOf('hold').holds === holds &&
      rowsOf('hold_release').n === settledHolds &&
      rowsOf('hold_release').holds === settledHolds &&
      rowsOf('consumption').n === count('committed') &&
      rowsOf('consumption').holds === count('committed') &&
      rowsOf('hold').delta + rowsOf('hold_release').delta === 0,
    Object.entries(byReason)
      .map(([reason, r]) => `${reason} ${r.n} rows (${r.holds} holds, delta ${r.delta})`)
      .join(', ') || 'no rows',
  ]);

  const fiveXx = Object.entries(totals).flatMap(([step, byCode]) =>
    Object.entries(byCode)
      .filter(([code]) => !(Number(code) < 500))
      .map(([code, n]) => `${step} ${code}: ${n}`),
  );
  checks.push(['no 5xx answer, error or timeout', fiveXx.length === 0, fiveXx.join(', ') || 'none']);
  return checks;
}

async function main() {
  for (const host of [settings.db.host, settings.redis.host]) {
    if (!LOOPBACK.has(host)) throw new Error(`the benchmark runs on loopback only; refusing host ${host}`);
  }
  const runs = settings.scenarios.length * settings.picks.length * settings.rounds;
  const loadBefore = os.loadavg();
  const budgetSeconds = (settings.warmup + settings.duration) * 2 * runs + 300;
  const guard = setTimeout(() => {
    log(`time limit of ${budgetSeconds} s reached; stopping`);
    cleanup().finally(() => process.exit(1));
  }, budgetSeconds * 1000);

  const admin = await mysql.createConnection({ ...settings.db, multipleStatements: false });
  database = `quota_bench_${randomBytes(4).toString('hex')}`;
  await admin.query(`CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  log(`database ${database}`);

  const servicePort = await freePort();
  const password = randomBytes(18).toString('base64url');
  const serviceEnv = {
    APP_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: String(servicePort),
    LOG_LEVEL: settings.logLevel,
    DB_CONNECTION: 'mysql',
    DB_HOST: settings.db.host,
    DB_PORT: String(settings.db.port),
    DB_USERNAME: settings.db.user,
    DB_PASSWORD: settings.db.password,
    DB_DATABASE: database,
    DB_POOL_SIZE: String(settings.poolSize),
    REDIS_HOST: settings.redis.host,
    REDIS_PORT: String(settings.redis.port),
    REDIS_PREFIX: `bench-${database}`,
    JWT_SECRET: randomBytes(48).toString('base64url'),
    THROTTLE_LIMIT: settings.throttleLimit,
    APP_ROLE: settings.role,
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
  // As bench/run.js: read the fresh tables once so the first measured run does not pay for it.
  await admin.query(
    'SELECT COUNT(*), SUM(m.quota_balance), SUM(c.max_quota) FROM members m JOIN member_quota_config c ON c.membership_type = m.membership_type',
  );

  log('creating the service user (npm run cli -- user:create)');
  const email = 'bench-service@example.test';
  await createUser(runToCompletion, serviceEnv, { email, role: 'service', password });

  const service = start('service', path.join(ROOT, 'dist/src/main.js'), [], serviceEnv, SERVICE_NODE_ARGS);
  const serviceUrl = `http://127.0.0.1:${servicePort}`;
  await waitReady(serviceUrl, 30_000, `the service (${service.stderr()})`);
  const token = await loginToken(serviceUrl, email, password);

  const target = { host: '127.0.0.1', port: servicePort };
  const span = ids.hi - ids.lo + 1;
  const pickers = {
    uniform: () => ids.lo + Math.floor(Math.random() * span),
    hot: () => ids.lo,
  };

  const rows = [];
  for (let round = 1; round <= settings.rounds; round++) {
    for (const pickName of settings.picks) {
      // Alternate the order so no scenario always runs on the warmest (or the fullest) database.
      const order = round % 2 === 1 ? settings.scenarios : [...settings.scenarios].reverse();
      for (const scenario of order) {
        const options = { target, token, pick: pickers[pickName], servicePid: service.child.pid };
        if (settings.warmup > 0) await measure(scenario, { ...options, seconds: settings.warmup });
        log(`round ${round}: ${scenario} on ${pickName} members for ${settings.duration} s`);
        const result = await measure(scenario, { ...options, seconds: settings.duration });
        log(
          `  ${result.opsPerSecond.toFixed(0)} ops/s, ${result.rps.toFixed(0)} req/s, p50 ${ms(result.p50)} ms, p99 ${ms(result.p99)} ms, ` +
            `answers ${JSON.stringify(result.statuses)}`,
        );
        rows.push({ round, scenario, pick: pickName, ...result });
      }
    }
  }

  const serviceRssMb = peakRssMb(service.child.pid);
  // Let the tail of the last run's writes and any expiry sweep settle before reading the ledger.
  await new Promise((r) => setTimeout(r, 1500));
  const answered = (step, status) => (totals[step] && totals[step][status]) || 0;
  const checks = await verifyLedger(admin, {
    holdsMade: answered('hold', 201),
    commits: answered('commit', 200),
    releases: answered('release', 200),
  });
  await admin.end();
  clearTimeout(guard);

  const best = (scenario, pick) =>
    rows.filter((r) => r.scenario === scenario && r.pick === pick).sort((a, b) => b.opsPerSecond - a.opsPerSecond)[0];
  const out = [];
  out.push(
    `quota-service holds benchmark: ${settings.connections} connections (virtual users), ${settings.duration} s per run, ` +
      `${settings.members} members, pool ${settings.poolSize}, ${settings.rounds} round(s), throttle limit ${settings.throttleLimit}, ` +
      `log level ${settings.logLevel}, service role ${settings.role}; hold ${HOLD_AMOUNT}, commit ${COMMIT_AMOUNT}`,
  );
  out.push('');
  out.push(
    table(
      rows.map((r) => ({
        ...r,
        label: `${r.scenario === 'consume-autocannon' ? 'consume (autocannon)' : r.scenario}${settings.rounds > 1 ? `#${r.round}` : ''}`,
      })),
    ),
  );
  out.push('');
  for (const pick of settings.picks) {
    const consume = best('consume', pick);
    for (const scenario of ['hold-commit', 'hold-release']) {
      const held = best(scenario, pick);
      if (!held) continue;
      out.push(
        `${pick} ${scenario} / consume (same load loop, best run of each): ops/s ${(held.opsPerSecond / consume.opsPerSecond).toFixed(2)}x, ` +
          `req/s ${(held.rps / consume.rps).toFixed(2)}x, p50 ${(held.p50 / consume.p50).toFixed(2)}x, p99 ${(held.p99 / consume.p99).toFixed(2)}x, ` +
          `service CPU per op ${(held.serviceMsPerOp / consume.serviceMsPerOp).toFixed(2)}x`,
      );
      if (settings.rounds > 1) {
        // Each round's own ratio: its two runs are closest in time, so they shared the machine's mood.
        const perRound = [];
        for (let round = 1; round <= settings.rounds; round++) {
          const of = (name) => rows.find((r) => r.round === round && r.pick === pick && r.scenario === name);
          perRound.push((of(scenario).opsPerSecond / of('consume').opsPerSecond).toFixed(2));
        }
        out.push(`  ops/s ratio in each round: ${perRound.join(', ')}`);
      }
    }
    const cannon = best('consume-autocannon', pick);
    if (cannon) {
      out.push(
        `${pick} consume, load loop / autocannon (as bench/run.js): req/s ${(consume.rps / cannon.rps).toFixed(2)}x, p99 ${(consume.p99 / Math.max(1, cannon.p99)).toFixed(2)}x`,
      );
    }
  }
  out.push(`service (APP_ROLE=${settings.role}) peak RSS over the whole run: ${serviceRssMb.toFixed(0)} MB`);
  // Other work on the machine moves these figures: the load average before and after says how busy it was.
  const loads = (l) => l.map((x) => x.toFixed(2)).join(' ');
  out.push(
    `load average (1/5/15 min) on ${os.cpus().length} cores: ${loads(loadBefore)} before, ${loads(os.loadavg())} after`,
  );
  out.push('');
  out.push('ledger and answers after the runs:');
  for (const [what, passed, detail] of checks) out.push(`  ${passed ? 'ok  ' : 'FAIL'} ${what}: ${detail}`);
  process.stdout.write(`${out.join('\n')}\n`);
  if (checks.some(([, passed]) => !passed)) process.exitCode = 1;
}

async function cleanup() {
  await stopAll();
  await dropDatabase(settings, database, log);
}

runBench(main, cleanup);
