'use strict';
/**
 * node bench/bulk.js (after npm run build): a bulk `set` adjustment of every member of a type,
 * measured three ways on identical data in the same run:
 *
 *  - raw set-based SQL, the floor to compare with: one mysql2 connection, chunks of
 *    BENCH_CHUNK_SIZE members by id range, one transaction each: INSERT INTO member_quota_history
 *    ... SELECT ... FROM members, then UPDATE members. It writes the columns and values the
 *    service writes for a `set` (LedgerBulkRepository.writeChunk): delta, balance_after, reason,
 *    actor, operation_id, note, created_at; quota_balance and updated_at. It runs before and after
 *    the service runs, so drift of a shared machine shows.
 *  - the service: an API process (APP_ROLE=api) takes POST /admin/quota/bulk-adjust
 *    {membership_type, new_quota} and N worker processes (APP_ROLE=worker) run it through BullMQ,
 *    timed from the 202 to `completed`; each worker's peak RSS (VmHWM) is read from /proc. N comes
 *    from BENCH_BULK_WORKERS (1,2): the bench only starts the processes, so it measures whatever
 *    the workers do with one operation.
 *  - optionally a naive per-member loop (select, update, insert per member; BENCH_NAIVE_MEMBERS).
 *
 * Every run gets a database of its own, created, migrated and seeded the same way (the same
 * migrations, row counts, indexes and membership type) and dropped afterwards, so every run
 * changes every member from the seed balance to the new quota. Before each timed run the bench
 * waits (bounded) until MariaDB has purged the seed's undo log, so no run pays for its seed. Each
 * run is checked afterwards: every member at the new quota, one history row per member for the
 * operation, and the ledger invariant; a run that fails the check fails the benchmark.
 *
 * Settings (environment): BENCH_BULK_SIZES (comma list, 200000), BENCH_BULK_WORKERS (comma list
 * of worker process counts, 1,2), BENCH_NAIVE_MEMBERS (0: skipped), BENCH_CHUNK_SIZE (10000; the
 * raw chunk and the service's JOBS_CHUNK_SIZE), BENCH_BULK_TIME_LIMIT (s; scaled to the sizes when
 * unset), BENCH_STRICT=1 (exit 1 when a target is missed), BENCH_LOG_LEVEL (warn),
 * BENCH_KEEP_DB=1, and DB_HOST/DB_PORT/DB_USERNAME/DB_PASSWORD, REDIS_HOST/REDIS_PORT.
 */
const { randomBytes } = require('node:crypto');
const fs = require('node:fs');
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
  waitReady,
  loginToken,
  createUser,
  servers,
} = require('./lib');

const log = logger('bench:bulk');
const { start, runToCompletion, stopAll } = processes();

const env = process.env;

function list(name, fallback) {
  const values = (env[name] || fallback).split(',').map((s) => Number(s.trim()));
  if (values.some((v) => !Number.isInteger(v) || v < 1))
    throw new Error(`${name} must be a comma list of positive integers`);
  return values;
}

/** The raw chunk and the service's JOBS_CHUNK_SIZE: the range the service accepts. */
function chunk() {
  const value = num('BENCH_CHUNK_SIZE', 10_000);
  if (!Number.isInteger(value) || value < 1 || value > 50_000) {
    throw new Error('BENCH_CHUNK_SIZE must be an integer from 1 to 50000');
  }
  return value;
}

/** Settings from the environment; a bad one stops the run with one line naming the variable. */
function readSettings() {
  try {
    return {
      sizes: list('BENCH_BULK_SIZES', '200000'),
      workerCounts: list('BENCH_BULK_WORKERS', '1,2'),
      naiveMembers: num('BENCH_NAIVE_MEMBERS', 0),
      chunkSize: chunk(),
      timeLimit: num('BENCH_BULK_TIME_LIMIT', 0),
      strict: env.BENCH_STRICT === '1',
      logLevel: env.BENCH_LOG_LEVEL || 'warn',
      keepDb: env.BENCH_KEEP_DB === '1',
      ...servers(),
    };
  } catch (err) {
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  }
}

const settings = readSettings();

/** The targets: the service at least half the raw rate of the same run, each worker under 300 MB. */
const TARGET_RATIO = 0.5;
const TARGET_RSS_MB = 300;

const TYPE = 'bulk_bench';
const SEED_BALANCE = 1000;
/** Every member changes: the seed gives 1,000, the adjustment sets 500. */
const NEW_QUOTA = 500;
const ADMIN_EMAIL = 'bench-admin@example.test';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);
/** Every database this run created: cleanup drops them and their Redis keys. */
const databases = [];
let admin = null;

function envFor(database) {
  return {
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
    JOBS_CHUNK_SIZE: String(settings.chunkSize),
  };
}

const fixed = (value, digits) => (Number.isFinite(value) ? value.toFixed(digits) : '-');

/** `YYYY-MM-DD HH:MM:SS.mmm` in UTC, as the service writes its timestamps. */
function sqlNow() {
  return new Date().toISOString().slice(0, 23).replace('T', ' ');
}

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

/** A database of its own for one run: created, migrated like the service's, seeded with `size` members. */
async function prepareDatabase(size, label) {
  const database = `quota_bench_${randomBytes(4).toString('hex')}`;
  databases.push(database);
  await admin.query(`CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  const childEnv = envFor(database);
  const t0 = Date.now();
  await runToCompletion(
    'migrations',
    path.join(ROOT, 'node_modules/typeorm/cli.js'),
    ['migration:run', '-d', 'dist/ormconfig.js'],
    childEnv,
  );
  const conn = await mysql.createConnection({ ...settings.db, database });
  await seedType(conn, TYPE, size, SEED_BALANCE);
  log(
    `${label}: database ${database} migrated and seeded with ${size} members in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
  return { database, conn, childEnv };
}

/**
 * Waits, at most 20 s, until MariaDB has purged the undo log the seed left (the history list):
 * that background work would otherwise land in whichever run comes next. Dirty pages are not
 * waited for: with the default innodb_max_dirty_pages_pct_lwm=0 a server that is never idle
 * keeps most of the buffer pool dirty, before every run alike. A shared server may keep the
 * history list long (another client's open transaction); the bench then goes on and says so.
 */
async function settle(label) {
  const t0 = Date.now();
  const historyLength = async () => {
    const [[row]] = await admin.query("SHOW GLOBAL STATUS LIKE 'Innodb_history_list_length'");
    return row ? Number(row.Value) : 0;
  };
  try {
    await waitUntil(async () => (await historyLength()) < 5000, 20_000, 'the undo log being purged');
    return (Date.now() - t0) / 1000;
  } catch {
    log(`${label}: the history list is still ${await historyLength()} long after 20 s; measuring anyway`);
    return NaN;
  }
}

/**
 * Waits until the workers' ledger tail (stats rollups, QUOTA_ANALYTICS_INTERVAL_MS) has folded in
 * every history row there is, the seed's initial grants included: otherwise it folds the seed
 * during the timed run and charges the adjustment for work a real deployment did long before.
 * Returns the seconds it took, NaN when it did not catch up in time (the run goes on and says so).
 */
async function tailCaughtUp(conn, label, timeoutMs) {
  const [[{ last }]] = await conn.query('SELECT COALESCE(MAX(id), 0) AS last FROM member_quota_history');
  const t0 = Date.now();
  const watermark = async () => {
    const [rows] = await conn.query("SELECT last_history_id FROM quota_analytics_state WHERE name = 'history_tail'");
    return rows.length > 0 ? Number(rows[0].last_history_id) : 0;
  };
  try {
    await waitUntil(async () => (await watermark()) >= Number(last), timeoutMs, 'the ledger tail catching up');
    return (Date.now() - t0) / 1000;
  } catch {
    log(
      `${label}: the ledger tail is at ${await watermark()} of ${last} after ${timeoutMs / 1000} s; measuring anyway`,
    );
    return NaN;
  }
}

/** Restarts a process's peak RSS (VmHWM) from its current RSS; false where Linux does not allow it. */
function resetPeakRss(pid) {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** CPU seconds (user + system) a process has used so far; NaN where /proc is not available. */
function cpuSeconds(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command name.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** MariaDB's (or MySQL's) pid when it runs on this machine and /proc shows it: its CPU use is reported. */
function databasePid() {
  try {
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const comm = fs.readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
      if (comm === 'mariadbd' || comm === 'mysqld') return Number(entry);
    }
  } catch {
    // No /proc: CPU figures are left out.
  }
  return null;
}

/**
 * The run left every member at the new quota, one history row per member for the operation with
 * the values the service writes, and the ledger invariant intact.
 */
async function verify(conn, label, size, operationId) {
  const [[members]] = await conn.query(
    'SELECT COUNT(*) AS n, COALESCE(SUM(quota_balance <> ?), 0) AS wrong FROM members WHERE membership_type = ?',
    [NEW_QUOTA, TYPE],
  );
  const [[history]] = await conn.query(
    `SELECT COUNT(*) AS n, COALESCE(SUM(delta <> ? OR balance_after <> ? OR reason <> 'bulk_adjustment'), 0) AS wrong
       FROM member_quota_history WHERE operation_id = ?`,
    [NEW_QUOTA - SEED_BALANCE, NEW_QUOTA, operationId],
  );
  const [[ledger]] = await conn.query(
    `SELECT COALESCE(SUM(m.quota_balance <> COALESCE(s.total, 0)), 0) AS mismatches
       FROM members m LEFT JOIN (SELECT member_id, SUM(delta) AS total FROM member_quota_history GROUP BY member_id) s
         ON s.member_id = m.id`,
  );
  const problems = [];
  if (Number(members.n) !== size) problems.push(`${members.n} members instead of ${size}`);
  if (Number(members.wrong) > 0) problems.push(`${members.wrong} members not at ${NEW_QUOTA}`);
  if (Number(history.n) !== size) problems.push(`${history.n} history rows for the operation instead of ${size}`);
  if (Number(history.wrong) > 0) problems.push(`${history.wrong} history rows with other values`);
  if (Number(ledger.mismatches) > 0) problems.push(`${ledger.mismatches} ledger mismatches`);
  if (problems.length > 0) throw new Error(`${label}: ${problems.join(', ')}`);
}

/** The raw set-based bulk: one connection, chunks by id range, history insert-select then update. */
async function rawRun(size, label) {
  const { conn } = await prepareDatabase(size, label);
  try {
    // A real operation row, so operation_id points somewhere as the service's does.
    const [op] = await conn.query(
      `INSERT INTO quota_operations (kind, status, selection, membership_type, mode, value, reason, payload, total, last_member_id, requested_by)
       VALUES ('bulk_adjust', 'running', 'membership_type', ?, 'set', ?, 'bulk_adjustment', '{}', ?, 0, '1')`,
      [TYPE, NEW_QUOTA, size],
    );
    const operationId = op.insertId;
    const [[range]] = await conn.query('SELECT MIN(id) AS lo, MAX(id) AS hi FROM members WHERE membership_type = ?', [
      TYPE,
    ]);
    const settled = await settle(label);
    const dbPid = databasePid();
    const dbCpuBefore = dbPid ? cpuSeconds(dbPid) : NaN;
    const clientBefore = process.cpuUsage();
    const started = process.hrtime.bigint();
    for (let lo = Number(range.lo); lo <= Number(range.hi); lo += settings.chunkSize) {
      const hi = lo + settings.chunkSize - 1;
      const now = sqlNow();
      await conn.beginTransaction();
      await conn.query(
        `INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor, operation_id, note, created_at)
         SELECT id, ? - quota_balance, ?, 'bulk_adjustment', ?, ?, ?, ? FROM members
          WHERE membership_type = ? AND id BETWEEN ? AND ?`,
        [NEW_QUOTA, NEW_QUOTA, '1', operationId, null, now, TYPE, lo, hi],
      );
      await conn.query(
        'UPDATE members SET quota_balance = ?, updated_at = ? WHERE membership_type = ? AND id BETWEEN ? AND ?',
        [NEW_QUOTA, now, TYPE, lo, hi],
      );
      await conn.commit();
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const client = process.cpuUsage(clientBefore);
    const dbCpu = dbPid ? cpuSeconds(dbPid) - dbCpuBefore : NaN;
    await verify(conn, label, size, operationId);
    return {
      label,
      members: size,
      seconds,
      rate: size / seconds,
      settled,
      nodeCpu: `${fixed((client.user + client.system) / 1e6, 1)} (client)`,
      dbCpu,
    };
  } finally {
    await conn.end();
  }
}

/** Stops these processes (SIGTERM) and waits for them to exit. */
async function stopProcesses(procs) {
  for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGTERM');
  await Promise.all(procs.map((p) => p.exited));
}

/** The service: an API process and `workers` worker processes on a database of their own. */
async function serviceRun(size, workers, label) {
  const { conn, childEnv } = await prepareDatabase(size, label);
  const procs = [];
  try {
    const password = randomBytes(18).toString('base64url');
    await createUser(runToCompletion, childEnv, { email: ADMIN_EMAIL, role: 'admin', password });
    const startService = async (role, name) => {
      const port = await freePort();
      const proc = start(
        name,
        path.join(ROOT, 'dist/src/main.js'),
        [],
        { ...childEnv, APP_ROLE: role, PORT: String(port) },
        SERVICE_NODE_ARGS,
      );
      procs.push(proc);
      return { proc, url: `http://127.0.0.1:${port}` };
    };
    const api = await startService('api', 'api');
    const workerProcs = [];
    for (let i = 1; i <= workers; i++) workerProcs.push(await startService('worker', `worker ${i}`));
    for (const { proc, url } of [api, ...workerProcs]) {
      await waitReady(url, 60_000, `the ${proc.name} process being ready (${proc.stderr()})`);
    }
    const headers = {
      authorization: `Bearer ${await loginToken(api.url, ADMIN_EMAIL, password)}`,
      'content-type': 'application/json',
    };
    const tail = await tailCaughtUp(conn, label, 60_000 + size * 0.2);
    log(`${label}: ledger tail caught up with the seed in ${fixed(tail, 1)} s`);
    const settled = await settle(label);

    // The peak so far is start-up and the seed's fold; from here on it is the adjustment's.
    const startupRss = workerProcs.map(({ proc }) => peakRssMb(proc.child.pid));
    const peakReset = workerProcs.every(({ proc }) => resetPeakRss(proc.child.pid));
    const dbPid = databasePid();
    const cpuBefore = [api, ...workerProcs].map(({ proc }) => cpuSeconds(proc.child.pid));
    const dbCpuBefore = dbPid ? cpuSeconds(dbPid) : NaN;
    const res = await fetch(`${api.url}/api/v1/admin/quota/bulk-adjust`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ membership_type: TYPE, new_quota: NEW_QUOTA }),
    });
    const started = process.hrtime.bigint();
    if (res.status !== 202) throw new Error(`${label}: bulk-adjust answered ${res.status}: ${await res.text()}`);
    const id = (await res.json()).data.operation_id;
    let op;
    for (;;) {
      const got = await fetch(`${api.url}/api/v1/admin/quota/operations/${id}`, { headers });
      if (got.status !== 200) throw new Error(`${label}: operation ${id} answered ${got.status}`);
      op = (await got.json()).data;
      if (['completed', 'failed', 'cancelled'].includes(op.status)) break;
      for (const { proc } of [api, ...workerProcs]) {
        if (proc.child.exitCode !== null)
          throw new Error(`${label}: the ${proc.name} process exited: ${proc.stderr()}`);
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const cpu = [api, ...workerProcs].map(({ proc }, i) => cpuSeconds(proc.child.pid) - cpuBefore[i]);
    const dbCpu = dbPid ? cpuSeconds(dbPid) - dbCpuBefore : NaN;
    if (op.status !== 'completed') throw new Error(`${label}: operation ${id} ended ${op.status}: ${op.error}`);
    if (op.processed !== size || op.changed !== size) {
      throw new Error(`${label}: operation ${id} processed ${op.processed} and changed ${op.changed} of ${size}`);
    }
    const rss = workerProcs.map(({ proc }) => peakRssMb(proc.child.pid));
    // The workers fold the adjustment's history rows into the stats after QUOTA_ANALYTICS_LAG_MS:
    // the memory that takes belongs to the adjustment too.
    const folded = Date.now();
    const foldTail = await tailCaughtUp(conn, `${label}, after the run`, 60_000 + size * 0.2);
    const foldSeconds = Number.isFinite(foldTail) ? (Date.now() - folded) / 1000 : NaN;
    const foldRss = workerProcs.map(({ proc }) => peakRssMb(proc.child.pid));
    const apiRss = peakRssMb(api.proc.child.pid);
    await stopProcesses(procs);
    await verify(conn, label, size, id);
    return {
      label,
      members: size,
      seconds,
      rate: size / seconds,
      settled,
      tail,
      startupRss,
      peakReset,
      rss,
      foldRss,
      foldSeconds,
      apiRss,
      nodeCpu: `${cpu
        .slice(1)
        .map((v) => fixed(v, 1))
        .join(' + ')} (workers), ${fixed(cpu[0], 1)} (api)`,
      dbCpu,
    };
  } finally {
    await stopProcesses(procs);
    await conn.end();
  }
}

/** The original per-member job: per member, one transaction with a select, an update and an insert. */
async function naiveRun(count, label) {
  const { conn } = await prepareDatabase(count, label);
  try {
    const [rows] = await conn.query('SELECT id FROM members WHERE membership_type = ? ORDER BY id', [TYPE]);
    await settle(label);
    const started = process.hrtime.bigint();
    for (const { id } of rows) {
      await conn.query('START TRANSACTION');
      const [[member]] = await conn.query('SELECT quota_balance FROM members WHERE id = ? FOR UPDATE', [id]);
      const next = NEW_QUOTA;
      await conn.query('UPDATE members SET quota_balance = ?, updated_at = NOW(3) WHERE id = ?', [next, id]);
      await conn.query(
        "INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor) VALUES (?, ?, ?, 'bulk_adjustment', 'bench')",
        [id, next - Number(member.quota_balance), next],
      );
      await conn.query('COMMIT');
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return { label, members: rows.length, seconds, rate: rows.length / seconds };
  } finally {
    await conn.end();
  }
}

function table(header, lines) {
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...lines.map(fmt)].join('\n');
}

/**
 * Seconds the run may take in all (BENCH_BULK_TIME_LIMIT overrides it): per size, two raw runs
 * (migrate, seed, run) and one service run per worker count (also start-up, the stats fold of the
 * seed before and of the adjustment after). 360 s for the default 200,000 members and 1, 2 workers.
 */
function timeBudget() {
  if (settings.timeLimit > 0) return settings.timeLimit;
  const perSize = settings.sizes.map(
    (size) => 2 * (20 + (size / 1_000_000) * 100) + settings.workerCounts.length * (40 + (size / 1_000_000) * 350),
  );
  return Math.ceil(60 + perSize.reduce((a, b) => a + b, 0) + settings.naiveMembers / 200);
}

async function main() {
  for (const host of [settings.db.host, settings.redis.host]) {
    if (!LOOPBACK.has(host)) throw new Error(`the benchmark runs on loopback only; refusing host ${host}`);
  }
  const budgetSeconds = timeBudget();
  const guard = setTimeout(() => {
    log(`time limit of ${budgetSeconds} s reached; stopping`);
    cleanup().finally(() => process.exit(1));
  }, budgetSeconds * 1000);
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      log(`${signal}: stopping`);
      cleanup().finally(() => process.exit(1));
    });
  }
  admin = await mysql.createConnection(settings.db);
  const [[{ version }]] = await admin.query('SELECT VERSION() AS version');
  const [[pool]] = await admin.query('SELECT @@innodb_buffer_pool_size AS bytes');

  const results = [];
  for (const size of settings.sizes) {
    log(
      `${size} members: raw set-based, then the service with ${settings.workerCounts.join(', ')} worker(s), then raw again`,
    );
    const raw = [await rawRun(size, `raw set-based (before)`)];
    const service = [];
    for (const workers of settings.workerCounts) {
      service.push({
        workers,
        ...(await serviceRun(size, workers, `service, ${workers} worker${workers > 1 ? 's' : ''}`)),
      });
    }
    raw.push(await rawRun(size, `raw set-based (after)`));
    results.push({ size, raw, service });
  }
  const naive = settings.naiveMembers > 0 ? await naiveRun(settings.naiveMembers, 'naive per-member loop') : null;
  clearTimeout(guard);

  const out = [];
  let missed = false;
  out.push(
    `bulk adjustment benchmark: set new_quota ${NEW_QUOTA} on every member of one type (seeded at ${SEED_BALANCE}), ` +
      `chunks of ${settings.chunkSize}, a fresh database per run; ${version}, buffer pool ${Math.round(Number(pool.bytes) / 2 ** 20)} MiB; ` +
      `service: api + worker processes with node ${SERVICE_NODE_ARGS.join(' ') || '(no flags)'}, MariaDB/MySQL + Redis on loopback`,
  );
  for (const { size, raw, service } of results) {
    const rawRate = raw.reduce((sum, r) => sum + r.rate, 0) / raw.length;
    out.push('');
    out.push(`${size} members (raw rate = mean of the runs before and after: ${rawRate.toFixed(0)} rows/s)`);
    const header = [
      'run',
      'seconds',
      'members/s',
      'x raw',
      '1M extrapolated s',
      'worker peak RSS MB: run / with fold',
      'Node CPU s',
      'MariaDB CPU s',
    ];
    const lines = [...raw, ...service].map((r) => [
      r.label,
      r.seconds.toFixed(2),
      r.rate.toFixed(0),
      r.rss ? (r.rate / rawRate).toFixed(2) : '-',
      (1_000_000 / r.rate).toFixed(1),
      r.rss ? r.rss.map((v, i) => `${fixed(v, 0)} / ${fixed(r.foldRss[i], 0)}`).join(', ') : '-',
      r.nodeCpu,
      fixed(r.dbCpu, 1),
    ]);
    // Raw before, the service runs, raw after: the order they ran in.
    out.push(table(header, [lines[0], ...lines.slice(2), lines[1]]));
    for (const s of service) {
      const ratio = s.rate / rawRate;
      // The run and the fold of its rows; the whole life of the process where the peak could not be reset.
      const maxRss = Math.max(...s.foldRss);
      const ratioOk = ratio >= TARGET_RATIO;
      const rssOk = maxRss < TARGET_RSS_MB;
      if (!ratioOk || !rssOk) missed = true;
      const mb = (values) => `${values.map((v) => fixed(v, 0)).join(', ')} MB`;
      out.push(
        `${s.label}: ${ratio.toFixed(2)}x raw (target >= ${TARGET_RATIO}x: ${ratioOk ? 'PASS' : 'FAIL'}), ` +
          `1M members in about ${(1_000_000 / s.rate).toFixed(1)} s; ` +
          `peak RSS per worker ${mb(s.foldRss)} (target < ${TARGET_RSS_MB} MB each: ${rssOk ? 'PASS' : 'FAIL'})` +
          (s.peakReset
            ? `: ${mb(s.rss)} up to completed, ${mb(s.foldRss)} with the stats fold of its rows ` +
              `(${fixed(s.foldSeconds, 1)} s after completed), ${mb(s.startupRss)} before it (start-up, the seed's fold)`
            : ' over the whole process life (the peak could not be reset)') +
          `; api ${fixed(s.apiRss, 0)} MB`,
      );
    }
    const behind = service.filter((r) => !Number.isFinite(r.tail)).map((r) => r.label);
    if (behind.length > 0) out.push(`The ledger tail had not folded the seed before: ${behind.join(', ')}`);
    const unsettled = [...raw, ...service].filter((r) => !Number.isFinite(r.settled)).map((r) => r.label);
    if (unsettled.length > 0)
      out.push(`MariaDB had not purged the undo log before: ${unsettled.join(', ')} (a shared, busy server)`);
  }
  if (naive) {
    out.push('');
    out.push(
      `naive per-member loop: ${naive.members} members in ${naive.seconds.toFixed(2)} s (${naive.rate.toFixed(0)} members/s); ` +
        settings.sizes.map((size) => `${size} members would take about ${(size / naive.rate).toFixed(0)} s`).join(', '),
    );
  }
  out.push('');
  out.push(
    'Every run was checked afterwards: all members at the new quota, one history row each for the operation, the ledger invariant intact. ' +
      'The 1M figures extrapolate linearly; a million members outgrow the buffer pool, so they are a lower bound. ' +
      'MariaDB CPU counts the whole server, other clients included.',
  );
  process.stdout.write(`${out.join('\n')}\n`);
  if (missed && settings.strict) process.exitCode = 1;
}

let cleaning = null;
function cleanup() {
  cleaning ??= (async () => {
    await stopAll();
    if (admin) await admin.end().catch(() => undefined);
    if (databases.length > 0) {
      // BullMQ's keys of this run only (each prefix is one of this run's database names), never a flush.
      const { Redis } = require('ioredis');
      const redis = new Redis({ ...settings.redis, lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        await redis.connect();
        for (const database of databases) {
          // The queue's keys under the hash tag, and the limiter's and the stats cache's beside them.
          for (const pattern of [`{bench-${database}}*`, `*bench-${database}:*`]) {
            let cursor = '0';
            do {
              const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
              cursor = next;
              if (keys.length > 0) await redis.del(...keys);
            } while (cursor !== '0');
          }
        }
      } catch {
        log("could not remove the run's Redis keys");
      } finally {
        redis.disconnect();
      }
    }
    for (const database of databases) await dropDatabase(settings, database, log);
  })();
  return cleaning;
}

runBench(main, cleanup);
