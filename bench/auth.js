'use strict';
/**
 * node bench/auth.js: what the service's own JWT authenticator (src/auth/jwt-authenticator.ts:
 * passport-jwt on a token's first use, then a cache of verified tokens) saves over
 * authenticating every request through `@nestjs/passport`'s AuthGuard('jwt'). The built service
 * (production mode, MariaDB/MySQL + Redis) runs twice on one database, once as shipped and once
 * with bench/passport-guard.js preloaded. Two scenarios, one token each: GET /api/v1/auth/me
 * (authentication, the rate limiter and one user lookup, nothing else) and POST .../consume over
 * BENCH_MEMBERS (10000) members with a unique Idempotency-Key each, where the authenticator leaves
 * the user check to the consume transaction (@ChecksCallerInTransaction) and AuthGuard('jwt')
 * looks the user up first. Rounds alternate the two variants.
 *
 * Settings: BENCH_DURATION (s, 10), BENCH_WARMUP (s, 2), BENCH_CONNECTIONS (64), BENCH_ROUNDS (2),
 * BENCH_THROTTLE_LIMIT (1000000 per minute: the limiter runs but does not refuse), BENCH_LOG_LEVEL
 * (warn), DB_HOST/DB_PORT/DB_USERNAME/DB_PASSWORD, REDIS_HOST/REDIS_PORT. Needs `npm run build`.
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

const log = logger('bench:auth');
const { start, runToCompletion, stopAll } = processes();
const env = process.env;
const settings = {
  duration: num('BENCH_DURATION', 10),
  warmup: num('BENCH_WARMUP', 2),
  connections: num('BENCH_CONNECTIONS', 64),
  rounds: Math.max(1, num('BENCH_ROUNDS', 2)),
  throttleLimit: String(num('BENCH_THROTTLE_LIMIT', 1_000_000)),
  logLevel: env.BENCH_LOG_LEVEL || 'warn',
  keepDb: env.BENCH_KEEP_DB === '1',
  ...servers(),
};
let database = null;

const MEMBERS = num('BENCH_MEMBERS', 10_000);
let members = { lo: 0, hi: 0 };

function drive(url, token, seconds, scenario) {
  if (scenario === 'me') {
    return autocannon({
      url: `${url}/api/v1/auth/me`,
      connections: settings.connections,
      duration: seconds,
      headers: { authorization: `Bearer ${token}` },
    });
  }
  const runId = randomBytes(6).toString('hex');
  let counter = 0;
  return autocannon({
    url,
    connections: settings.connections,
    duration: seconds,
    requests: [
      {
        method: 'POST',
        setupRequest: (req) => ({
          ...req,
          path: `/api/v1/quota/members/${members.lo + Math.floor(Math.random() * (members.hi - members.lo + 1))}/consume`,
          headers: {
            authorization: `Bearer ${token}`,
            'content-type': 'application/json',
            'idempotency-key': `${runId}-${counter++}`,
          },
          body: '{"amount":1}',
        }),
      },
    ],
  });
}

async function seed(conn) {
  await conn.query(
    "INSERT INTO member_quota_config (membership_type, max_quota, reset_period, is_active, description, created_at, updated_at) VALUES ('bench', 1000000, 'none', 1, 'bench/auth.js', NOW(3), NOW(3))",
  );
  const values = Array.from({ length: MEMBERS }, (_, n) => `('bench-${n}', 'bench', 1000000, NOW(3), NOW(3), NOW(3))`);
  await conn.query(
    `INSERT INTO members (external_id, membership_type, quota_balance, period_started_at, created_at, updated_at) VALUES ${values.join(', ')}`,
  );
  await conn.query(
    "INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor) SELECT id, quota_balance, quota_balance, 'initial_grant', 'system' FROM members",
  );
  const [[range]] = await conn.query('SELECT MIN(id) AS lo, MAX(id) AS hi FROM members');
  return { lo: Number(range.lo), hi: Number(range.hi) };
}

async function main() {
  const admin = await mysql.createConnection({ ...settings.db });
  database = `quota_bench_${randomBytes(4).toString('hex')}`;
  await admin.query(`CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  const password = randomBytes(18).toString('base64url');
  const serviceEnv = (port, variant) => ({
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
    REDIS_PREFIX: `bench-${database}-${variant}`,
    JWT_SECRET: 'bench-secret-that-is-long-enough-0123456789-abcdefghijklmnop',
    THROTTLE_LIMIT: settings.throttleLimit,
    APP_ROLE: 'api',
  });
  log(`database ${database}: migrations and one operator user`);
  await runToCompletion(
    'migrations',
    path.join(ROOT, 'node_modules/typeorm/cli.js'),
    ['migration:run', '-d', 'dist/ormconfig.js'],
    serviceEnv(0, 'setup'),
  );
  for (const role of ['operator', 'service']) {
    await runToCompletion(
      'user:create',
      path.join(ROOT, 'dist/src/cli/main.js'),
      ['user:create', '--email', `bench-${role}@example.test`, '--role', role, '--password', password],
      serviceEnv(0, 'setup'),
    );
  }
  await admin.query(`USE \`${database}\``);
  members = await seed(admin);
  await admin.end();

  const variants = {
    authenticator: [],
    'AuthGuard(jwt)': ['--require', path.join(__dirname, 'passport-guard.js')],
  };
  const best = {};
  for (let round = 1; round <= settings.rounds; round++) {
    const order = round % 2 === 1 ? Object.keys(variants) : Object.keys(variants).reverse();
    for (const name of order) {
      const port = await freePort();
      const service = start(name, path.join(ROOT, 'dist/src/main.js'), [], serviceEnv(port, round), [
        ...SERVICE_NODE_ARGS,
        ...variants[name],
      ]);
      const url = `http://127.0.0.1:${port}`;
      await waitUntil(
        async () => (await fetch(`${url}/api/v1/health/ready`)).status === 200,
        30_000,
        `${name} (${service.stderr()})`,
      );
      for (const [scenario, role] of [
        ['me', 'operator'],
        ['consume', 'service'],
      ]) {
        const login = await fetch(`${url}/api/v1/auth/login`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ email: `bench-${role}@example.test`, password }),
        });
        if (login.status !== 200) throw new Error(`login failed with ${login.status}`);
        const token = (await login.json()).data.access_token;
        if (settings.warmup > 0) await drive(url, token, settings.warmup, scenario);
        const result = await drive(url, token, settings.duration, scenario);
        const non2xx = result.non2xx + result.errors;
        log(
          `round ${round}: ${scenario} ${name} ${Math.round(result.requests.average)} req/s, p99 ${result.latency.p99} ms, non-2xx/errors ${non2xx}`,
        );
        if (non2xx > 0) throw new Error(`${name}: ${non2xx} requests failed`);
        const key = `${scenario}|${name}`;
        if (!best[key] || result.requests.average > best[key].rps) {
          best[key] = { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99 };
        }
      }
      service.child.kill('SIGTERM');
      await service.exited;
    }
  }
  const lines = [
    `${settings.connections} connections, ${settings.duration} s per run, best of ${settings.rounds} round(s)`,
    '',
    'scenario  authentication   req/s  p50 ms  p99 ms',
    '--------  ---------------  -----  ------  ------',
    ...Object.entries(best).map(([key, b]) => {
      const [scenario, name] = key.split('|');
      return `${scenario.padEnd(8)}  ${name.padEnd(15)}  ${String(Math.round(b.rps)).padStart(5)}  ${String(b.p50).padStart(6)}  ${String(b.p99).padStart(6)}`;
    }),
    '',
    ...['me', 'consume'].map(
      (scenario) =>
        `${scenario.padEnd(8)} authenticator / AuthGuard(jwt): req/s ${(best[`${scenario}|authenticator`].rps / best[`${scenario}|AuthGuard(jwt)`].rps).toFixed(2)}x`,
    ),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

runBench(main, async () => {
  await stopAll();
  await dropDatabase(settings, database, log);
});
