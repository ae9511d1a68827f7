import request from 'supertest';
import { Webhook } from 'standardwebhooks';
import { MAX_ATTEMPTS } from '../../src/webhooks/retry-schedule';
import { MAX_RESPONSE_BYTES } from '../../src/webhooks/webhook-sender';
import { setReadOnly } from '../maintenance/helpers';
import { loginAs } from '../support/auth';
import { sql } from '../support/quota-factories';
import { freePort } from '../support/service-process';
import { startTestApp, type TestApp } from '../support/test-app';
import {
  createSubscription,
  deactivateAll,
  deliveriesOf,
  deliveryOf,
  held,
  newSecret,
  Receiver,
  recordEvent,
  storedBody,
  until,
} from './delivery-helpers';

const RETRY_BASE_MS = 100;
const TIMEOUT_MS = 1000;
const WEBHOOK_ENV = {
  WEBHOOK_ALLOW_HTTP: 'true',
  WEBHOOK_RETRY_BASE_MS: String(RETRY_BASE_MS),
  WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS),
  WEBHOOK_POLL_INTERVAL_MS: '50',
};
const REFUSED_PRIVATE = 'destination refused: the host resolves to a loopback, private, link-local or metadata address';

async function metric(t: TestApp, line: RegExp): Promise<number> {
  const res = await request(t.server).get('/metrics');
  expect(res.status).toBe(200);
  const match = line.exec(res.text);
  return match ? Number(match[1]) : NaN;
}

describe('webhook delivery workers', () => {
  jest.setTimeout(60_000);
  let t: TestApp;
  let receiver: Receiver;

  beforeAll(async () => {
    receiver = await new Receiver().start();
    t = await startTestApp({ env: { ...WEBHOOK_ENV, WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true' } });
  });
  afterEach(() => deactivateAll(t));
  afterAll(async () => {
    await t?.close();
    await receiver?.close();
  });

  it('delivers the stored body byte for byte with Standard Webhooks headers, and records it', async () => {
    const before = await metric(t, /^quota_webhook_deliveries_total\{result="delivered"\} (\d+)/m);
    const { secret } = await createSubscription(t, receiver.url('/ok'));
    const event = await recordEvent(t, { note: 'héllo \u2028 wörld', n: 1 });
    const [got] = await receiver.waitFor('/ok', 1);
    await until(async () => (await deliveryOf(t, event.id)).status === 'delivered');

    expect(got.body).toBe(await storedBody(t, event.id));
    expect(got.headers['content-type']).toBe('application/json');
    expect(got.headers['webhook-id']).toBe(event.uid);
    expect(got.headers['user-agent']).toMatch(/^quota-service-webhooks\//);
    expect(Math.abs(Number(got.headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(10);
    expect(got.headers['webhook-signature'].split(' ')).toHaveLength(1);
    expect(new Webhook(secret).verify(got.body, got.headers)).toEqual({
      type: 'webhook.test',
      timestamp: expect.any(String),
      data: { note: 'héllo \u2028 wörld', n: 1 },
    });
    expect(() => new Webhook(newSecret()).verify(got.body, got.headers)).toThrow();

    const stored = await deliveryOf(t, event.id);
    expect(stored).toMatchObject({
      status: 'delivered',
      attempts: 1,
      lastStatusCode: 200,
      lastError: null,
      nextAttemptAt: null,
      claimedUntil: null,
      claimedBy: null,
    });
    expect(stored.deliveredAt).not.toBeNull();
    // Nothing more is sent for it.
    await new Promise((r) => setTimeout(r, 300));
    expect(receiver.received('/ok')).toHaveLength(1);
    expect(await metric(t, /^quota_webhook_deliveries_total\{result="delivered"\} (\d+)/m)).toBe(
      (Number.isNaN(before) ? 0 : before) + 1,
    );
    expect(await metric(t, /^quota_webhook_deliveries_pending (\d+)/m)).toBe(0);
  });

  it('signs with both secrets while a rotation overlaps, and with the new one only after it', async () => {
    const secret = newSecret();
    const previousSecret = newSecret();
    await createSubscription(t, receiver.url('/rotating'), {
      secret,
      previousSecret,
      previousSecretExpiresAt: new Date(Date.now() + 3_600_000),
    });
    await createSubscription(t, receiver.url('/rotated'), {
      secret,
      previousSecret,
      previousSecretExpiresAt: new Date(Date.now() - 1000),
    });
    const event = await recordEvent(t);
    const [overlap] = await receiver.waitFor('/rotating', 1);
    const [after] = await receiver.waitFor('/rotated', 1);

    expect(overlap.headers['webhook-signature'].split(' ')).toHaveLength(2);
    expect(new Webhook(secret).verify(overlap.body, overlap.headers)).toMatchObject({ type: 'webhook.test' });
    expect(new Webhook(previousSecret).verify(overlap.body, overlap.headers)).toMatchObject({ type: 'webhook.test' });
    expect(after.headers['webhook-signature'].split(' ')).toHaveLength(1);
    expect(new Webhook(secret).verify(after.body, after.headers)).toMatchObject({ type: 'webhook.test' });
    expect(() => new Webhook(previousSecret).verify(after.body, after.headers)).toThrow();
    expect(overlap.headers['webhook-id']).toBe(event.uid);
    expect(after.headers['webhook-id']).toBe(event.uid);
  });

  it('retries a receiver that failed (500) with the same webhook-id and body until it takes it', async () => {
    const retryCounted = await metric(t, /^quota_webhook_deliveries_total\{result="retrying"\} (\d+)/m);
    const second = held(200);
    receiver.on('/flaky', (req, res, nth) =>
      nth === 1 ? res.writeHead(500).end('down') : second.handler(req, res, nth),
    );
    const { secret } = await createSubscription(t, receiver.url('/flaky'));
    const event = await recordEvent(t, { note: 'retry me' });

    const [first, retry] = await receiver.waitFor('/flaky', 2);
    // The retry is in flight: the first attempt's result is stored, the second holds the lease.
    expect(await deliveryOf(t, event.id)).toMatchObject({
      status: 'pending',
      attempts: 2,
      lastStatusCode: 500,
      lastError: 'HTTP 500',
    });
    expect((await deliveryOf(t, event.id)).claimedBy).not.toBeNull();
    second.release();
    await until(async () => (await deliveryOf(t, event.id)).status === 'delivered');

    expect(retry.at - first.at).toBeGreaterThanOrEqual(RETRY_BASE_MS * 0.8 - 5);
    expect(retry.headers['webhook-id']).toBe(first.headers['webhook-id']);
    expect(retry.body).toBe(first.body);
    expect(retry.body).toBe(await storedBody(t, event.id));
    expect(new Webhook(secret).verify(retry.body, retry.headers)).toMatchObject({ data: { note: 'retry me' } });
    expect(await deliveryOf(t, event.id)).toMatchObject({
      status: 'delivered',
      attempts: 2,
      lastStatusCode: 200,
      lastError: null,
      nextAttemptAt: null,
      claimedBy: null,
    });
    expect(await metric(t, /^quota_webhook_deliveries_total\{result="retrying"\} (\d+)/m)).toBeGreaterThan(
      Number.isNaN(retryCounted) ? 0 : retryCounted,
    );
  });

  it('gives up on a receiver that hangs past the time-out, counts it as timed out, and retries', async () => {
    const second = held(204);
    receiver.on('/hang', (req, res, nth) => (nth === 1 ? undefined : second.handler(req, res, nth)));
    await createSubscription(t, receiver.url('/hang'));
    const hanging = await recordEvent(t);

    const [first, retry] = await receiver.waitFor('/hang', 2);
    await first.closed;
    expect(retry.at - first.at).toBeGreaterThanOrEqual(TIMEOUT_MS);
    expect(retry.at - first.at).toBeLessThan(TIMEOUT_MS + 5000);
    expect(await deliveryOf(t, hanging.id)).toMatchObject({
      status: 'pending',
      attempts: 2,
      lastStatusCode: null,
      lastError: 'timed out',
    });
    second.release();
    await until(async () => (await deliveryOf(t, hanging.id)).status === 'delivered');
    expect(await deliveryOf(t, hanging.id)).toMatchObject({ attempts: 2, lastStatusCode: 204, lastError: null });
    expect(retry.headers['webhook-id']).toBe(hanging.uid);
  });

  it('does not follow redirects: a 3xx is a failed attempt and the target receives nothing', async () => {
    receiver.on('/moved', (_req, res) => res.writeHead(302, { location: receiver.url('/target') }).end());
    await createSubscription(t, receiver.url('/moved'));
    const moved = await recordEvent(t);
    await receiver.waitFor('/moved', 1);
    await until(async () => (await deliveryOf(t, moved.id)).lastStatusCode === 302);

    const stored = await deliveryOf(t, moved.id);
    expect(stored).toMatchObject({ status: 'pending', lastStatusCode: 302, lastError: 'redirect not followed' });
    expect(stored.attempts).toBeGreaterThanOrEqual(1);
    expect(stored.nextAttemptAt).not.toBeNull();
    await new Promise((r) => setTimeout(r, 300));
    expect(receiver.received('/target')).toHaveLength(0);
  });

  it('reads at most 64 KiB of a 10 MB response: the attempt ends at once, the body is never read whole', async () => {
    let written = 0;
    let finished = false;
    receiver.on('/huge', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(10 * 1024 * 1024) });
      res.on('finish', () => (finished = true));
      const chunk = Buffer.alloc(64 * 1024, 'x');
      // Slowly enough that reading it whole would take longer than the time-out.
      const timer = setInterval(() => {
        if (res.destroyed || written >= 10 * 1024 * 1024) {
          clearInterval(timer);
          if (!res.destroyed) res.end();
          return;
        }
        res.write(chunk);
        written += chunk.length;
      }, 10);
    });
    await createSubscription(t, receiver.url('/huge'));
    const event = await recordEvent(t);
    const [got] = await receiver.waitFor('/huge', 1);
    await until(async () => (await deliveryOf(t, event.id)).status === 'delivered', TIMEOUT_MS);
    const took = Date.now() - got.at;
    await got.closed;

    expect(took).toBeLessThan(TIMEOUT_MS);
    expect(finished).toBe(false);
    expect(written).toBeLessThan(10 * 1024 * 1024);
    expect(await deliveryOf(t, event.id)).toMatchObject({
      status: 'delivered',
      attempts: 1,
      lastStatusCode: 200,
      lastError: null,
    });
    expect(MAX_RESPONSE_BYTES).toBe(65_536);
  });

  it('records a refused connection in its own words, and retries it', async () => {
    const closedPort = await freePort();
    await createSubscription(t, `http://127.0.0.1:${closedPort}/nobody`);
    const event = await recordEvent(t);
    await until(async () => (await deliveryOf(t, event.id)).lastError !== null);
    const stored = await deliveryOf(t, event.id);
    expect(stored).toMatchObject({ status: 'pending', lastStatusCode: null, lastError: 'connection refused' });
    expect(stored.nextAttemptAt).not.toBeNull();
  });

  it('marks a delivery failed after the last attempt of the schedule', async () => {
    const failedBefore = await metric(t, /^quota_webhook_deliveries_total\{result="failed"\} (\d+)/m);
    receiver.on('/broken', (_req, res) => res.writeHead(500).end());
    await createSubscription(t, receiver.url('/broken'));
    // One attempt left: the schedule's earlier ones are taken as done.
    const event = await recordEvent(t, undefined, (recorded, exec) =>
      exec('UPDATE webhook_deliveries SET attempts = ? WHERE event_id = ?', [MAX_ATTEMPTS - 1, recorded.id]),
    );
    await until(async () => (await deliveryOf(t, event.id)).status === 'failed');
    expect(await deliveryOf(t, event.id)).toMatchObject({
      status: 'failed',
      attempts: MAX_ATTEMPTS,
      lastStatusCode: 500,
      lastError: 'HTTP 500',
      nextAttemptAt: null,
      claimedUntil: null,
      claimedBy: null,
      deliveredAt: null,
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(receiver.received('/broken')).toHaveLength(1);
    expect(await metric(t, /^quota_webhook_deliveries_total\{result="failed"\} (\d+)/m)).toBe(
      (Number.isNaN(failedBefore) ? 0 : failedBefore) + 1,
    );
  });

  it('does not send to an inactive subscription, and sends once it is active again', async () => {
    const { id } = await createSubscription(t, receiver.url('/paused'));
    const event = await recordEvent(t, undefined, (_recorded, exec) =>
      exec('UPDATE webhook_subscriptions SET is_active = 0 WHERE id = ?', [id]),
    );
    await new Promise((r) => setTimeout(r, 500));
    expect(receiver.received('/paused')).toHaveLength(0);
    expect(await deliveryOf(t, event.id)).toMatchObject({ status: 'pending', attempts: 0, claimedBy: null });

    await sql(t, 'UPDATE webhook_subscriptions SET is_active = 1 WHERE id = ?', [id]);
    await receiver.waitFor('/paused', 1);
    await until(async () => (await deliveryOf(t, event.id)).status === 'delivered');
  });

  it('claims nothing while writes are frozen, and delivers once the freeze ends', async () => {
    const admin = (await loginAs(t, 'admin')).token;
    await createSubscription(t, receiver.url('/frozen'));
    await setReadOnly(t, admin, true, 'restoring a backup');
    try {
      const event = await recordEvent(t);
      await new Promise((r) => setTimeout(r, 600));
      expect(receiver.received('/frozen')).toHaveLength(0);
      expect(await deliveryOf(t, event.id)).toMatchObject({ status: 'pending', attempts: 0, claimedBy: null });

      await setReadOnly(t, admin, false);
      await receiver.waitFor('/frozen', 1);
      await until(async () => (await deliveryOf(t, event.id)).status === 'delivered');
      expect(await deliveryOf(t, event.id)).toMatchObject({ attempts: 1, lastStatusCode: 200 });
    } finally {
      await setReadOnly(t, admin, false);
    }
  });
});

describe('webhook delivery workers without WEBHOOK_ALLOW_PRIVATE_NETWORKS', () => {
  jest.setTimeout(60_000);
  let t: TestApp;
  let receiver: Receiver;

  beforeAll(async () => {
    receiver = await new Receiver().start();
    t = await startTestApp({ env: WEBHOOK_ENV });
  });
  afterAll(async () => {
    await t?.close();
    await receiver?.close();
  });

  it('refuses loopback destinations at send time (literal, mapped and by name): nothing reaches the receiver', async () => {
    await createSubscription(t, receiver.url('/literal'));
    await createSubscription(t, receiver.url('/mapped', '[::ffff:127.0.0.1]'));
    await createSubscription(t, receiver.url('/named', 'localhost'));
    const event = await recordEvent(t);
    expect(event.deliveries).toBe(3);
    const deliveries = () => deliveriesOf(t, event.id);
    await until(async () => (await deliveries()).every((d) => d.attempts >= 1 && d.claimedBy === null));

    for (const stored of await deliveries()) {
      expect(stored).toMatchObject({ status: 'pending', lastStatusCode: null, lastError: REFUSED_PRIVATE });
      expect(stored.nextAttemptAt).not.toBeNull();
    }
    expect(receiver.requests).toHaveLength(0);
  });

  it('fails a refused destination for good once the schedule is used up', async () => {
    await deactivateAll(t);
    await createSubscription(t, receiver.url('/last-try'));
    const event = await recordEvent(t, undefined, (recorded, exec) =>
      exec('UPDATE webhook_deliveries SET attempts = ? WHERE event_id = ?', [MAX_ATTEMPTS - 1, recorded.id]),
    );
    await until(async () => (await deliveryOf(t, event.id)).status === 'failed');
    expect(await deliveryOf(t, event.id)).toMatchObject({
      status: 'failed',
      attempts: MAX_ATTEMPTS,
      lastError: REFUSED_PRIVATE,
      nextAttemptAt: null,
    });
    expect(receiver.requests).toHaveLength(0);
  });
});
