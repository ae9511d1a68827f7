import type { ServerResponse } from 'node:http';
import { readTimestamp } from '../../src/database/sql-session';
import { sql } from '../support/quota-factories';
import { freePort, spawnService, waitUntilReady, type ServiceProcess } from '../support/service-process';
import { baseTestEnv, startTestApp, type TestApp } from '../support/test-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { createSubscription, Receiver, recordEvent, until } from './delivery-helpers';

const EVENTS = 20;
/** The worker's concurrency: how many attempts are in flight when it is killed. */
const IN_FLIGHT = 8;
const TIMEOUT_MS = 3000;
const WEBHOOK_ENV = {
  WEBHOOK_ALLOW_HTTP: 'true',
  WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
  WEBHOOK_RETRY_BASE_MS: '100',
  WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS),
  WEBHOOK_POLL_INTERVAL_MS: '50',
};

describe('a delivery worker process killed with attempts in flight (MariaDB, built service)', () => {
  jest.setTimeout(120_000);
  let database: TestDatabase;
  let api: TestApp;
  let receiver: Receiver;
  const workers: ServiceProcess[] = [];

  beforeAll(async () => {
    receiver = await new Receiver().start();
    database = await createTestDatabase('mysql');
    // Records events and reads the database; APP_ROLE=api never sends.
    api = await startTestApp({ database, env: { ...WEBHOOK_ENV, APP_ROLE: 'api' } });
  });
  afterAll(async () => {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
    await api?.close();
    await receiver?.close();
    await database?.drop();
  });

  async function startWorker(): Promise<ServiceProcess> {
    const worker = spawnService({
      ...baseTestEnv(database),
      ...WEBHOOK_ENV,
      APP_ROLE: 'worker',
      PORT: String(await freePort()),
      HOST: '127.0.0.1',
    });
    workers.push(worker);
    await waitUntilReady(worker, 20_000);
    return worker;
  }

  async function deliveredCount(): Promise<number> {
    const [row] = await sql<{ n: unknown }>(
      api,
      "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = 'delivered'",
    );
    return Number(row.n);
  }

  it('SIGKILL while the receiver holds its requests: a new worker sends them again after the lease, none is lost', async () => {
    let holding = true;
    const heldResponses: ServerResponse[] = [];
    receiver.on('/crash', (_req, res) => (holding ? heldResponses.push(res) : res.end('ok')));
    await createSubscription(api, receiver.url('/crash'));
    const uids: string[] = [];
    for (let i = 0; i < EVENTS; i++) uids.push((await recordEvent(api, { n: i })).uid);
    await new Promise((r) => setTimeout(r, 300));
    expect(receiver.received('/crash')).toHaveLength(0);

    const first = await startWorker();
    await receiver.waitFor('/crash', IN_FLIGHT);
    // The worker's slots are full: nothing more comes while these are held.
    await new Promise((r) => setTimeout(r, 300));
    expect(receiver.received('/crash')).toHaveLength(IN_FLIGHT);
    const inFlight = receiver.received('/crash').map((r) => r.headers['webhook-id']);
    first.child.kill('SIGKILL');
    await first.exited();
    const killedAt = Date.now();

    const leased = await sql<{ uid: string; attempts: unknown; claimed_until: unknown; status: string }>(
      api,
      `SELECT e.uid, d.attempts, d.claimed_until, d.status FROM webhook_deliveries d
         JOIN webhook_events e ON e.id = d.event_id WHERE d.claimed_by IS NOT NULL`,
    );
    expect(new Set(leased.map((row) => row.uid))).toEqual(new Set(inFlight));
    for (const row of leased) {
      expect(row.status).toBe('pending');
      expect(Number(row.attempts)).toBe(1);
      expect(readTimestamp(row.claimed_until).getTime()).toBeGreaterThan(killedAt);
    }
    expect(await deliveredCount()).toBe(0);

    holding = false;
    const second = await startWorker();
    await until(async () => (await deliveredCount()) === EVENTS, 60_000, 100);

    const received = receiver.received('/crash');
    // The killed worker's attempts were sent again (after their leases lapsed, same webhook-id);
    // the rest once.
    expect(received).toHaveLength(EVENTS + IN_FLIGHT);
    expect(new Set(received.map((r) => r.headers['webhook-id']))).toEqual(new Set(uids));
    for (const uid of uids) {
      const sends = received.filter((r) => r.headers['webhook-id'] === uid);
      expect(sends).toHaveLength(inFlight.includes(uid) ? 2 : 1);
      if (sends.length === 2) {
        expect(sends[1].body).toBe(sends[0].body);
        expect(sends[1].at).toBeGreaterThanOrEqual(killedAt);
      }
    }
    expect(receiver.overlaps).toEqual([]);
    const rows = await sql<{ uid: string; attempts: unknown; claimed_by: unknown }>(
      api,
      'SELECT e.uid, d.attempts, d.claimed_by FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id',
    );
    for (const row of rows) {
      expect(Number(row.attempts)).toBe(inFlight.includes(row.uid) ? 2 : 1);
      expect(row.claimed_by).toBeNull();
    }
    for (const res of heldResponses) res.destroy();
    second.child.kill('SIGTERM');
    expect(await second.exited()).toBe(0);
  });

  it('SIGTERM: claims nothing more, lets the attempts in flight finish and record, and exits 0', async () => {
    await sql(api, 'UPDATE webhook_subscriptions SET is_active = 0');
    const heldResponses: ServerResponse[] = [];
    receiver.on('/term', (_req, res) => heldResponses.push(res));
    const { id } = await createSubscription(api, receiver.url('/term'));
    for (let i = 0; i < EVENTS; i++) await recordEvent(api, { n: i });

    const worker = await startWorker();
    await receiver.waitFor('/term', IN_FLIGHT);
    worker.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    for (const res of heldResponses) res.end('ok');
    expect(await worker.exited()).toBe(0);

    expect(receiver.received('/term')).toHaveLength(IN_FLIGHT);
    const rows = await sql<{ status: string; attempts: unknown; claimed_by: unknown }>(
      api,
      'SELECT status, attempts, claimed_by FROM webhook_deliveries WHERE subscription_id = ?',
      [id],
    );
    expect(rows.filter((row) => row.status === 'delivered' && Number(row.attempts) === 1)).toHaveLength(IN_FLIGHT);
    expect(rows.filter((row) => row.status === 'pending' && Number(row.attempts) === 0)).toHaveLength(
      EVENTS - IN_FLIGHT,
    );
    expect(rows.every((row) => row.claimed_by === null)).toBe(true);
  });
});
