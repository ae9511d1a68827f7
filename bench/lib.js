'use strict';
/** What every benchmark script needs: settings from the environment, ports, child processes. */
const { spawn } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');

/** The node flags production runs the service with (npm run start:prod, the Dockerfile). */
const PRODUCTION_NODE_ARGS = require('../package.json')
  .scripts['start:prod'].split(' ')
  .filter((word) => word.startsWith('--'));

/** The service's node flags: production's, plus BENCH_SERVICE_NODE_ARGS (e.g. --cpu-prof) when set. */
const SERVICE_NODE_ARGS = [
  ...PRODUCTION_NODE_ARGS,
  ...(process.env.BENCH_SERVICE_NODE_ARGS || '').split(' ').filter(Boolean),
];

function num(name, fallback) {
  const raw = process.env[name];
  const value = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number`);
  return value;
}

function logger(tag) {
  return (line) => process.stderr.write(`[${tag}] ${line}\n`);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts node scripts with only PATH and the given environment, and remembers them for cleanup. */
function processes() {
  const children = [];
  function start(name, script, args, childEnv, nodeArgs = []) {
    const child = spawn(process.execPath, [...nodeArgs, script, ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH || '', ...childEnv },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr = (stderr + chunk).slice(-4000)));
    const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    children.push(child);
    return { name, child, exited, stderr: () => stderr };
  }
  async function runToCompletion(name, script, args, childEnv) {
    const proc = start(name, script, args, childEnv);
    const code = await proc.exited;
    if (code !== 0) throw new Error(`${name} exited with ${code}: ${proc.stderr()}`);
  }
  /** Stops every child (SIGTERM) and waits for them to exit. */
  async function stopAll() {
    for (const child of children) {
      if (child.exitCode === null) child.kill('SIGTERM');
    }
    await Promise.all(
      children.map((child) => (child.exitCode !== null ? null : new Promise((resolve) => child.once('exit', resolve)))),
    );
  }
  return { children, start, runToCompletion, stopAll };
}

/** Peak resident set size of a process so far (VmHWM), in MB; NaN where /proc is not available. */
function peakRssMb(pid) {
  try {
    const status = require('node:fs').readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /VmHWM:\s+(\d+) kB/.exec(status);
    return match ? Number(match[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Drops the run's database, unless BENCH_KEEP_DB asked to keep it. */
async function dropDatabase(settings, database, log) {
  if (!database) return;
  if (settings.keepDb) {
    log(`kept database ${database}`);
    return;
  }
  const mysql = require('mysql2/promise');
  const conn = await mysql.createConnection(settings.db).catch(() => null);
  if (conn) {
    await conn.query(`DROP DATABASE IF EXISTS \`${database}\``).catch(() => undefined);
    await conn.end();
  }
}

/** Runs a benchmark's main(), then its cleanup whatever happened; a failure sets exit code 1. */
function runBench(main, cleanup) {
  main()
    .then(cleanup, async (err) => {
      process.stderr.write(`bench failed: ${err && err.stack ? err.stack : String(err)}\n`);
      await cleanup();
      process.exitCode = 1;
    })
    .catch((err) => {
      process.stderr.write(`cleanup failed: ${String(err)}\n`);
      process.exitCode = 1;
    });
}

async function waitUntil(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} did not happen within ${timeoutMs} ms`);
}

/** `npm run cli -- user:create` on the built CLI with the service's environment: a user a benchmark logs in as. */
function createUser(runToCompletion, env, { email, role, password }) {
  return runToCompletion(
    'user:create',
    path.join(ROOT, 'dist/src/cli/main.js'),
    ['user:create', '--email', email, '--role', role, '--password', password],
    env,
  );
}

/** Waits until the service at `url` answers its readiness probe with 200. */
function waitReady(url, timeoutMs, what) {
  return waitUntil(async () => (await fetch(`${url}/api/v1/health/ready`)).status === 200, timeoutMs, what);
}

/** Logs in over HTTP; returns the access token. */
async function loginToken(url, email, password) {
  const login = await fetch(`${url}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
  if (login.status !== 200) throw new Error(`login as ${email} failed with ${login.status}`);
  return (await login.json()).data.access_token;
}

/** MariaDB/MySQL and Redis on loopback unless DB_HOST/DB_PORT/DB_USERNAME/DB_PASSWORD and REDIS_HOST/REDIS_PORT say otherwise. */
function servers() {
  const env = process.env;
  return {
    db: {
      host: env.DB_HOST || '127.0.0.1',
      port: num('DB_PORT', 3306),
      user: env.DB_USERNAME || 'root',
      password: env.DB_PASSWORD || '',
    },
    redis: { host: env.REDIS_HOST || '127.0.0.1', port: num('REDIS_PORT', 6379) },
  };
}

module.exports = {
  servers,
  ROOT,
  PRODUCTION_NODE_ARGS,
  SERVICE_NODE_ARGS,
  dropDatabase,
  peakRssMb,
  runBench,
  num,
  logger,
  freePort,
  processes,
  waitUntil,
  createUser,
  waitReady,
  loginToken,
};
