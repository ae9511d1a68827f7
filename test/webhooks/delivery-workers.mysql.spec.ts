import request from 'supertest';
import { sql } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { createSubscription, Receiver, recordEvent, until } from './delivery-helpers';

const SUBSCRIPTIONS = 3;
const EVENTS = 100;
const ENV = {
  WEBHOOK_ALLOW_HTTP: 'true',
  WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
  WEBHOOK_RETRY_BASE_MS: '100',
  WEBHOOK_TIMEOUT_MS: '2000',
  WEBHOOK_POLL_INTERVAL_MS: '50',
};

async function deliveredBy(t: TestApp): Promise<number> {
  const res = await request(t.server).get('/metrics');
  const match = /^quota_webhook_deliveries_total\{result="delivered"\} (\d+)/m.exec(res.text);
  return match ? Number(match[1]) : 0;
}

describe('two delivery workers on one MariaDB database', () => {
  jest.setTimeout(120_000);
  let database: TestDatabase;
  let first: TestApp;
  let second: TestApp;
  let receiver: Receiver;

  beforeAll(async () => {
    receiver = await new Receiver().start();
    database = await createTestDatabase('mysql');
    first = await startTestApp({ database, env: ENV });
    second = await startTestApp({ database, env: ENV });
  });
  afterAll(async () => {
    await first?.close();
    await second?.close();
    await receiver?.close();
    await database?.drop();
  });

  it('delivers every one of a few hundred deliveries exactly once, never the same one twice at a time', async () => {
    const paths = Array.from({ length: SUBSCRIPTIONS }, (_, i) => `/worker-${i}`);
    for (const path of paths) {
      // Answers take a little while, so both workers have attempts in flight together.
      receiver.on(path, (_req, res) => setTimeout(() => res.end('ok'), 5 + Math.random() * 20));
      await createSubscription(first, receiver.url(path));
    }
    const uids: string[] = [];
    for (let i = 0; i < EVENTS; i++) uids.push((await recordEvent(first, { n: i })).uid);
    const total = SUBSCRIPTIONS * EVENTS;

    await until(async () => {
      const [row] = await sql<{ n: unknown }>(
        first,
        "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = 'delivered'",
      );
      return Number(row.n) === total;
    }, 90_000);

    expect(receiver.overlaps).toEqual([]);
    expect(receiver.requests).toHaveLength(total);
    const pairs = new Set(receiver.requests.map((r) => `${r.path} ${r.headers['webhook-id']}`));
    expect(pairs.size).toBe(total);
    for (const path of paths) {
      expect(new Set(receiver.received(path).map((r) => r.headers['webhook-id']))).toEqual(new Set(uids));
    }
    const [stored] = await sql<{ n: unknown; attempts: unknown; leased: unknown }>(
      first,
      `SELECT COUNT(*) AS n, SUM(attempts) AS attempts, SUM(claimed_by IS NOT NULL) AS leased
         FROM webhook_deliveries WHERE status = 'delivered' AND last_status_code = 200`,
    );
    expect(Number(stored.n)).toBe(total);
    expect(Number(stored.attempts)).toBe(total);
    expect(Number(stored.leased)).toBe(0);
    // Both workers took part, and between them counted each delivery once.
    const [byFirst, bySecond] = [await deliveredBy(first), await deliveredBy(second)];
    expect(byFirst).toBeGreaterThan(0);
    expect(bySecond).toBeGreaterThan(0);
    expect(byFirst + bySecond).toBe(total);
  });
});
