import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, spawnService, waitForOutput, waitUntilReady } from '../support/service-process';
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
  });
});
