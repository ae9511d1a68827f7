import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { baseTestEnv } from './test-app';
import { createTestDatabase, type TestDatabase } from './test-database';

export const BUILT_MAIN = join(__dirname, '../../dist/src/main.js');
/** The built CLI, as `npm run cli -- ...` runs it. */
export const BUILT_CLI = join(__dirname, '../../dist/src/cli/main.js');

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a built entry point (the CLI, the TypeORM CLI) to its end with only the given environment,
 * from the repository root; killed after `timeoutMs`.
 */
export function runNode(
  args: readonly string[],
  env: Record<string, string>,
  options: { stdin?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...args], {
      cwd: join(__dirname, '../..'),
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.stdin ?? '');
  });
}

/** `npm run cli -- <args>` on the built CLI. */
export function runCli(env: Record<string, string>, args: readonly string[], stdin?: string): Promise<RunResult> {
  return runNode([BUILT_CLI, ...args], env, { stdin });
}

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

export interface ServiceProcess {
  readonly child: ChildProcess;
  readonly baseUrl: string;
  output(): string;
  exited(): Promise<number | null>;
}

/** Runs the built service as production would, with only the given environment. */
export function spawnService(env: Record<string, string>): ServiceProcess {
  return spawnProcess(process.execPath, [BUILT_MAIN], env, Number(env.PORT));
}

/** A command that runs the service (e.g. under a pseudo-terminal), with only the given environment. */
export function spawnProcess(
  command: string,
  args: readonly string[],
  env: Record<string, string>,
  port: number,
): ServiceProcess {
  let output = '';
  const child = spawn(command, args, {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    baseUrl: `http://127.0.0.1:${port}`,
    output: () => output,
    exited: () => exit,
  };
}

export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, intervalMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}

/** Log lines reach stdout in batches, at most 250 ms late: wait for one rather than expect it at once. */
export async function waitForOutput(
  service: ServiceProcess,
  pattern: string | RegExp,
  timeoutMs = 5_000,
): Promise<void> {
  const found = () =>
    typeof pattern === 'string' ? service.output().includes(pattern) : pattern.test(service.output());
  await waitFor(() => Promise.resolve(found()), timeoutMs, 25).catch(() => {
    throw new Error(`the service did not log ${String(pattern)}; it logged:\n${service.output()}`);
  });
}

/** Polls readiness; gives up at once if the process exits, and says what it logged either way. */
export async function waitUntilReady(service: ServiceProcess, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (service.child.exitCode !== null || service.child.signalCode !== null) {
      last = `none: the process exited (${service.child.exitCode ?? service.child.signalCode})`;
      break;
    }
    try {
      const res = await fetch(`${service.baseUrl}/api/v1/health/ready`);
      last = `${res.status} ${await res.text()}`;
      if (res.status === 200) return;
    } catch (err) {
      last = `no answer (${err instanceof Error ? err.message : String(err)})`;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `the service was not ready within ${timeoutMs} ms; last readiness answer: ${last}; it logged:\n${service.output()}`,
  );
}

/**
 * Built service processes on one embedded database file, for one describe block: the file is made
 * before its tests and dropped after them, and every process started is killed. `start()` spawns
 * one more process on the file (rate limits off, `env` on top) and resolves once it is ready.
 */
export function servicesOnOneEmbeddedFile(env: Record<string, string> = {}) {
  let database: TestDatabase | undefined;
  const services: ServiceProcess[] = [];
  beforeAll(async () => {
    database = await createTestDatabase('sqlite');
  });
  afterAll(async () => {
    for (const s of services) if (s.child.exitCode === null) s.child.kill('SIGKILL');
    await database?.drop();
  });
  const databaseOf = (): TestDatabase => {
    if (!database) throw new Error('the database is made in beforeAll');
    return database;
  };
  return {
    get database(): TestDatabase {
      return databaseOf();
    },
    async start(): Promise<ServiceProcess> {
      const service = spawnService({
        ...baseTestEnv(databaseOf()),
        PORT: String(await freePort()),
        HOST: '127.0.0.1',
        THROTTLE_LIMIT: '0',
        ...env,
      });
      services.push(service);
      await waitUntilReady(service, 20_000);
      return service;
    },
  };
}
