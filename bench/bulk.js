'use strict';
/**
 * node bench/bulk.js (after npm run build): bulk adjustment by membership type through the real
 * queue. An API process (APP_ROLE=api) takes POST /bulk-adjust and a worker process
 * (APP_ROLE=worker) runs the BullMQ job; the time is measured from the 202 to `completed`, and the
 * worker's peak RSS is read from /proc. In the same run a naive per-member loop (select, update,
 * insert per member, one transaction each) adjusts a smaller set, extrapolated to the same sizes.
 * Loopback only, on a database created for the run and dropped afterwards, within a time limit.
 *
 * Settings (environment): BENCH_BULK_SIZES (comma list, default 100000,1000000),
 * BENCH_NAIVE_MEMBERS (10000), BENCH_CHUNK_SIZE (service default when unset), BENCH_LOG_LEVEL
 * (warn), BENCH_KEEP_DB=1, and DB_HOST/DB_PORT/DB_USERNAME/DB_PASSWORD, REDIS_HOST/REDIS_PORT.
 */
const { randomBytes } = require('node:crypto');
const path = require('node:path');
const mysql = require('mysql2/promise');
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

const log = logger('bench:bulk');
const { start, runToCompletion, stopAll } = processes();

const env = process.env;

const settings = {
  sizes: (env.BENCH_BULK_SIZES || '100000,1000000').split(',').map((s) => Number(s.trim())),
  naiveMembers: num('BENCH_NAIVE_MEMBERS', 10_000),
  chunkSize: env.BENCH_CHUNK_SIZE || '',
  logLevel: env.BENCH_LOG_LEVEL || 'warn',
  keepDb: env.BENCH_KEEP_DB === '1',
  ...servers(),
};

/** The goals for each size, in members: seconds to finish. */
const TARGET_SECONDS = { 100000: 4, 1000000: 30 };
const TARGET_RSS_MB = 300;
const TARGET_SPEEDUP = 25;

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);
let database = null;

async function seedType(conn, type, count, balance) {
  await conn.query(
    "INSERT INTO member_quota_config (membership_type, max_quota, reset_period, is_active, description, created_at, updated_at) VALUES (?, ?, 'none', 1, 'bench/bulk.js', NOW(3), NOW(3))",
    [type, balance],
  );
  const chunk = 10_000;
  for (let first = 0; first < count; first += chunk) {
    const n = Math.min(chunk, count - first);
    const values = [];
    for (let i = 0; i < n; i++) values.push(`('${type}-${first + i}', '${type}', ${balance}, NOW(3), NOW(3), NOW(3))`);
    await conn.query(
      `INSERT INTO members (external_id, membership_type, quota_balance, period_started_at, created_at, updated_at) VALUES ${values.join(', ')}`,
    );
  }
  await conn.query(
    "INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor) SELECT id, quota_balance, quota_balance, 'initial_grant', 'system' FROM members WHERE membership_type = ?",
    [type],
  );
}

/** What the seed's job did: per member, one transaction with a select, an update and an insert. */
async function naiveLoop(conn, type) {
  const [rows] = await conn.query('SELECT id FROM members WHERE membership_type = ? ORDER BY id', [type]);
  const started = process.hrtime.bigint();
  for (const { id } of rows) {
    await conn.query('START TRANSACTION');
    const [[member]] = await conn.query('SELECT quota_balance FROM members WHERE id = ? FOR UPDATE', [id]);
    const next = Math.max(0, Number(member.quota_balance) + 1);
    await conn.query('UPDATE members SET quota_balance = ?, updated_at = NOW(3) WHERE id = ?', [next, id]);
    await conn.query(
      "INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor) VALUES (?, ?, ?, 'bulk_adjustment', 'bench')",
      [id, next - Number(member.quota_balance), next],
    );
    await conn.query('COMMIT');
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { members: rows.length, seconds };
}

function table(rows) {
  const header = ['scenario', 'members', 'seconds', 'members/s', 'worker peak RSS MB'];
  const lines = rows.map((r) => [r.scenario, String(r.members), r.seconds, r.rate, r.rss]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...lines.map(fmt)].join('\n');
}

async function main() {
  for (const host of [settings.db.host, settings.redis.host]) {
    if (!LOOPBACK.has(host)) throw new Error(`the benchmark runs on loopback only; refusing host ${host}`);
  }
  const totalMembers = settings.sizes.reduce((a, b) => a + b, 0);
  // Seeding costs about 20 s per million members here; the runs themselves are meant to take 30 s at most.
  const budgetSeconds = 240 + Math.ceil(totalMembers / 1_000_000) * 150 + Math.ceil(settings.naiveMembers / 1000) * 5;
  const guard = setTimeout(() => {
    log(`time limit of ${budgetSeconds} s reached; stopping`);
    cleanup().finally(() => process.exit(1));
  }, budgetSeconds * 1000);

  const admin = await mysql.createConnection({ ...settings.db, multipleStatements: false });
  database = `quota_bench_${randomBytes(4).toString('hex')}`;
  await admin.query(`CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  log(`database ${database}`);

  const password = randomBytes(18).toString('base64url');
  const common = {
    APP_ENV: 'production',
    HOST: '127.0.0.1',
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
    ...(settings.chunkSize ? { JOBS_CHUNK_SIZE: settings.chunkSize } : {}),
  };

  log('applying migrations');
  await runToCompletion(
    'migrations',
    path.join(ROOT, 'node_modules/typeorm/cli.js'),
    ['migration:run', '-d', 'dist/ormconfig.js'],
    common,
  );
  await admin.query(`USE \`${database}\``);
  for (const size of settings.sizes) {
    log(`seeding ${size} members of type bulk_${size}`);
    const t0 = Date.now();
    await seedType(admin, `bulk_${size}`, size, 1000);
    log(`seeded in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
  await seedType(admin, 'naive', settings.naiveMembers, 1000);
  await runToCompletion(
    'user:create',
    path.join(ROOT, 'dist/src/cli/main.js'),
    ['user:create', '--email', 'bench-admin@example.test', '--role', 'admin', '--password', password],
    common,
  );

  const apiPort = await freePort();
  const workerPort = await freePort();
  const startService = (role, port) =>
    start(
      role,
      path.join(ROOT, 'dist/src/main.js'),
      [],
      { ...common, APP_ROLE: role, PORT: String(port) },
      SERVICE_NODE_ARGS,
    );
  const api = startService('api', apiPort);
  const worker = startService('worker', workerPort);
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  for (const [proc, port] of [
    [api, apiPort],
    [worker, workerPort],
  ]) {
    await waitUntil(
      async () => (await fetch(`http://127.0.0.1:${port}/api/v1/health/ready`)).status === 200,
      30_000,
      `the ${proc.name} process (${proc.stderr()})`,
    );
  }
  const login = await fetch(`${apiUrl}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'bench-admin@example.test', password }),
  });
  if (login.status !== 200) throw new Error(`login failed with ${login.status}`);
  const headers = {
    authorization: `Bearer ${(await login.json()).data.access_token}`,
    'content-type': 'application/json',
  };

  const rows = [];
  const results = {};
  for (const size of settings.sizes) {
    log(`bulk adjust of ${size} members through the queue`);
    const res = await fetch(`${apiUrl}/api/v1/admin/quota/bulk-adjust`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ membership_type: `bulk_${size}`, delta: 1 }),
    });
    const started = process.hrtime.bigint();
    if (res.status !== 202) throw new Error(`bulk-adjust answered ${res.status}: ${await res.text()}`);
    const id = (await res.json()).data.operation_id;
    let op;
    for (;;) {
      const got = await fetch(`${apiUrl}/api/v1/admin/quota/operations/${id}`, { headers });
      op = (await got.json()).data;
      if (['completed', 'failed', 'cancelled'].includes(op.status)) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (op.status !== 'completed') throw new Error(`operation ${id} ended ${op.status}: ${op.error}`);
    const rss = peakRssMb(worker.child.pid);
    results[size] = { seconds, rate: op.processed / seconds, rss };
    rows.push({
      scenario: `queued, by type`,
      members: op.processed,
      seconds: seconds.toFixed(2),
      rate: (op.processed / seconds).toFixed(0),
      rss: rss.toFixed(0),
    });
  }

  log(`naive per-member loop on ${settings.naiveMembers} members`);
  const naive = await naiveLoop(admin, 'naive');
  const naiveRate = naive.members / naive.seconds;
  rows.push({
    scenario: 'naive per-member loop',
    members: naive.members,
    seconds: naive.seconds.toFixed(2),
    rate: naiveRate.toFixed(0),
    rss: '-',
  });
  for (const size of settings.sizes) {
    rows.push({
      scenario: '  naive, extrapolated',
      members: size,
      seconds: (size / naiveRate).toFixed(1),
      rate: naiveRate.toFixed(0),
      rss: '-',
    });
  }

  const [[ledger]] = await admin.query(
    `SELECT COUNT(*) AS checked, COALESCE(SUM(m.quota_balance <> COALESCE(s.total, 0)), 0) AS mismatches
       FROM members m LEFT JOIN (SELECT member_id, SUM(delta) AS total FROM member_quota_history GROUP BY member_id) s
         ON s.member_id = m.id`,
  );
  await admin.end();
  clearTimeout(guard);

  const out = [];
  out.push(
    `bulk adjustment benchmark: membership type selection, delta +1, chunk size ${settings.chunkSize || 'service default'}, ` +
      `api and worker as separate processes, MariaDB/MySQL + Redis on loopback`,
  );
  out.push('');
  out.push(table(rows));
  out.push('');
  for (const size of settings.sizes) {
    const r = results[size];
    const target = TARGET_SECONDS[size];
    const speedup = r.rate / naiveRate;
    out.push(
      `${String(size).padStart(8)} members: ${r.seconds.toFixed(2)} s` +
        (target ? ` (target <= ${target} s: ${r.seconds <= target ? 'met' : 'NOT met'})` : '') +
        `, ${speedup.toFixed(0)}x the naive loop (target >= ${TARGET_SPEEDUP}x: ${speedup >= TARGET_SPEEDUP ? 'met' : 'NOT met'})` +
        `, worker peak RSS ${r.rss.toFixed(0)} MB (target < ${TARGET_RSS_MB}: ${r.rss < TARGET_RSS_MB ? 'met' : 'NOT met'})`,
    );
  }
  out.push(`api process peak RSS over the whole run: ${peakRssMb(api.child.pid).toFixed(0)} MB`);
  out.push(`ledger after the runs: ${ledger.checked} members checked, ${Number(ledger.mismatches)} mismatches`);
  process.stdout.write(`${out.join('\n')}\n`);
}

async function cleanup() {
  await stopAll();
  if (database) {
    // BullMQ's keys of this run only (the prefix is this run's database name), never a flush.
    const { Redis } = require('ioredis');
    const redis = new Redis({ ...settings.redis, lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await redis.connect();
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `{bench-${database}}*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== '0');
    } catch {
      log("could not remove the run's Redis keys");
    } finally {
      redis.disconnect();
    }
  }
  await dropDatabase(settings, database, log);
}

runBench(main, cleanup);
