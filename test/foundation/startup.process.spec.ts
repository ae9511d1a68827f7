import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BUILT_MAIN,
  freePort,
  spawnProcess,
  spawnService,
  waitForOutput,
  waitUntilReady,
} from '../support/service-process';
import { TEST_JWT_SECRET } from '../support/test-app';

describe('the built service as a process', () => {
  let workDir: string;

  beforeEach(() => {
    workDir = mkdtempSync(join(tmpdir(), 'quota-test-process-'));
  });
  afterEach(() => {
    rmSync(workDir, { recursive: true, force: true });
  });

  it.each([
    [{ PORT: 'eighty' }, 'PORT'],
    [{ DB_CONNECTION: 'oracle' }, 'DB_CONNECTION'],
    [{ APP_ENV: 'production', JWT_SECRET: 'secret' }, 'JWT_SECRET'],
    [{ TRUST_PROXY: 'true' }, 'TRUST_PROXY'],
  ])('stops at once with one line naming the variable for %j', async (env, variable) => {
    const service = spawnService({ ...env, DB_DATABASE: join(workDir, 'quota-test.sqlite') });
    const code = await service.exited();
    expect(code).toBe(1);
    const lines = service.output().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^Invalid configuration: ${variable}: `));
  });

  it('creates the embedded database on first start, applies migrations, and drains on SIGTERM before exiting 0', async () => {
    const port = await freePort();
    const file = join(workDir, 'data', 'quota-test.sqlite');
    const service = spawnService({
      PORT: String(port),
      HOST: '127.0.0.1',
      DB_DATABASE: file,
      JWT_SECRET: TEST_JWT_SECRET,
      SHUTDOWN_DRAIN_DELAY_MS: '1500',
    });
    await waitUntilReady(service);
    expect(existsSync(file)).toBe(true);
    await waitForOutput(service, /database: embedded SQLite at .*quota-test\.sqlite; background work: in-process jobs/);
    // A new user's first question: how to log in.
    await waitForOutput(service, 'No admin user exists yet');
    expect(service.output()).toContain('npm run cli -- user:create --email you@example.com --role admin');

    // An in-flight request: headers sent, body still arriving when SIGTERM lands.
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    let response = '';
    socket.on('data', (chunk: Buffer) => (response += chunk.toString()));
    const body = JSON.stringify({ in_flight: true });
    socket.write(
      `POST /api/v1/drain-probe HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 5)}`,
    );
    await new Promise((r) => setTimeout(r, 100));

    service.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    const ready = await fetch(`${service.baseUrl}/api/v1/health/ready`);
    expect(ready.status).toBe(503);
    const live = await fetch(`${service.baseUrl}/api/v1/health/live`);
    expect(live.status).toBe(200);

    socket.write(body.slice(5));
    const code = await service.exited();
    expect(code).toBe(0);
    // The in-flight request was answered (here, with the route's 404 problem) before the exit.
    expect(response).toMatch(/^HTTP\/1\.1 404 /);
    expect(response).toContain('application/problem+json');
    expect(service.output()).toContain('shutdown complete');
    // Standard output is a pipe here, as under a log collector: every line is one JSON object.
    for (const line of service.output().trim().split('\n')) {
      expect(() => JSON.parse(line) as unknown).not.toThrow();
    }
  });

  it('writes readable lines, not JSON, when standard output is a terminal', async () => {
    const port = await freePort();
    const env = {
      PORT: String(port),
      HOST: '127.0.0.1',
      DB_DATABASE: join(workDir, 'quota-test.sqlite'),
      JWT_SECRET: TEST_JWT_SECRET,
    };
    // `script` runs the service on a pseudo-terminal, as `npm start` in a shell would.
    const command = `exec ${process.execPath} ${BUILT_MAIN}`;
    const service = spawnProcess(
      'script',
      ['--quiet', '--flush', '--return', '--command', command, '/dev/null'],
      env,
      port,
    );
    try {
      await waitUntilReady(service);
      await waitForOutput(service, 'No admin user exists yet');
      const lines = service
        .output()
        .split(/\r?\n/)
        .filter((line) => line.includes('listening on'));
      expect(lines).toHaveLength(1);
      // eslint-disable-next-line no-control-regex -- colours are escape sequences
      const plain = lines[0].replace(/\u001b\[[0-9;]*m/g, '');
      expect(plain).toMatch(/^\[\d{2}:\d{2}:\d{2}\.\d{3}\] INFO: listening on http:\/\/127\.0\.0\.1:/);
      expect(() => JSON.parse(plain) as unknown).toThrow();
    } finally {
      service.child.kill('SIGTERM');
      await service.exited();
    }
  });
});
