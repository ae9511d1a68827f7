import { SchedulerRegistry } from '@nestjs/schedule';
import request from 'supertest';
import { QuotaDatabase } from '../../src/database/database';
import { sqlTimestamp } from '../../src/database/sql-session';
import { EventsRepository, type RecordedEvent } from '../../src/events/events.repository';
import {
  PURGE_BATCH,
  WebhookRetention,
  WEBHOOK_RETENTION_INTERVAL,
} from '../../src/webhooks/webhook-retention.service';
import { bearer, loginAs } from '../support/auth';
import { parsePrometheusText } from '../support/prometheus';
import { sql } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';
import { createSubscription, deliveriesOf } from './delivery-helpers';

const DAY_MS = 86_400_000;

/** Events recorded at `at` (fanned out to the active subscriptions), their deliveries then set to `status`. */
async function recordAt(t: TestApp, at: Date, count: number, status: 'pending' | 'delivered' | 'failed') {
  return t.app.get(QuotaDatabase).transaction(async (s) => {
    const events = await new EventsRepository().recordAll(
      s,
      Array.from({ length: count }, (_, i) => ({
        type: 'operation.completed' as const,
        data: { n: i },
        source: null,
        at,
      })),
    );
    const ids = events.map((e) => e.id);
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500);
      await s.exec(`UPDATE webhook_deliveries SET status = ? WHERE event_id IN (${chunk.map(() => '?').join(', ')})`, [
        status,
        ...chunk,
      ]);
    }
    return events;
  });
}

async function storedEventIds(t: TestApp): Promise<Set<string>> {
  const rows = await sql<{ id: unknown }>(t, 'SELECT id FROM webhook_events');
  return new Set(rows.map((r) => String(r.id)));
}

async function deliveryCount(t: TestApp): Promise<number> {
  const rows = await sql<{ n: unknown }>(t, 'SELECT COUNT(*) AS n FROM webhook_deliveries');
  return Number(rows[0].n);
}

describe('webhook event log retention (WEBHOOK_RETENTION_DAYS)', () => {
  jest.setTimeout(60_000);
  let t: TestApp;

  beforeAll(async () => {
    // Workers poll rarely here: every delivery keeps the status the test gives it.
    t = await startTestApp({
      env: {
        WEBHOOK_ALLOW_HTTP: 'true',
        WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true',
        WEBHOOK_POLL_INTERVAL_MS: '60000',
        WEBHOOK_RETENTION_DAYS: '7',
      },
    });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('runs hourly on APP_ROLE=all', () => {
    const interval = t.app.get(SchedulerRegistry).getInterval<{ _idleTimeout?: number }>(WEBHOOK_RETENTION_INTERVAL);
    expect(interval._idleTimeout).toBe(3_600_000);
  });

  it('deletes settled events older than the retention with their deliveries, in batches; keeps pending and recent ones', async () => {
    await createSubscription(t, 'http://127.0.0.1:9/a', { events: ['operation.completed'] });
    await createSubscription(t, 'http://127.0.0.1:9/b', { events: ['operation.completed'] });
    const now = new Date();
    const old = new Date(now.getTime() - 8 * DAY_MS);
    const delivered = await recordAt(t, old, PURGE_BATCH + 5, 'delivered');
    const failed = await recordAt(t, old, 3, 'failed');
    const stillRetrying = await recordAt(t, old, 2, 'pending');
    const recent = await recordAt(t, new Date(now.getTime() - 6 * DAY_MS), 4, 'delivered');
    expect(delivered[0].deliveries).toBe(2);
    const deliveriesBefore = await deliveryCount(t);

    const purged = await t.app.get(WebhookRetention).purge(now);

    expect(purged).toBe(PURGE_BATCH + 5 + 3);
    const left = await storedEventIds(t);
    const ids = (events: RecordedEvent[]) => events.map((e) => e.id);
    for (const id of [...ids(delivered), ...ids(failed)]) expect(left.has(id)).toBe(false);
    for (const id of [...ids(stillRetrying), ...ids(recent)]) expect(left.has(id)).toBe(true);
    // Their delivery logs went with them; the others are whole.
    expect(await deliveryCount(t)).toBe(deliveriesBefore - 2 * purged);
    expect(await deliveriesOf(t, failed[0].id)).toEqual([]);
    expect(await deliveriesOf(t, stillRetrying[0].id)).toHaveLength(2);

    const metrics = parsePrometheusText((await request(t.server).get('/metrics').expect(200)).text);
    expect(metrics.samples.find((s) => s.name === 'quota_webhook_events_purged_total')?.value).toBe(purged);
    // Nothing left to delete: a second pass changes nothing.
    expect(await t.app.get(WebhookRetention).purge(now)).toBe(0);
  });

  it('a settled delivery of a purged event answers 404 to a redelivery; one of a kept event is redelivered', async () => {
    const admin = await loginAs(t, 'admin');
    const { id: webhookId } = await createSubscription(t, 'http://127.0.0.1:9/c', { events: ['operation.completed'] });
    await sql(t, 'UPDATE webhook_subscriptions SET is_active = 0 WHERE id <> ?', [webhookId]);
    const now = new Date();
    const [old] = await recordAt(t, new Date(now.getTime() - 30 * DAY_MS), 1, 'failed');
    const [kept] = await recordAt(t, new Date(now.getTime() - DAY_MS), 1, 'failed');
    const [oldDelivery] = await deliveriesOf(t, old.id);
    const [keptDelivery] = await deliveriesOf(t, kept.id);

    expect(await t.app.get(WebhookRetention).purge(now)).toBe(1);

    const gone = await request(t.server)
      .post(`/api/v1/admin/webhooks/${webhookId}/deliveries/${oldDelivery.id}/redeliver`)
      .set(bearer(admin.token));
    expect(gone.status).toBe(404);
    expect(gone.headers['content-type']).toMatch(/^application\/problem\+json/);
    const again = await request(t.server)
      .post(`/api/v1/admin/webhooks/${webhookId}/deliveries/${keptDelivery.id}/redeliver`)
      .set(bearer(admin.token));
    expect(again.status).toBe(202);
    expect(again.body.data).toMatchObject({ event_id: kept.uid, status: 'pending' });
    // The redelivered event is pending again, so the retention leaves it whatever its age.
    await sql(t, 'UPDATE webhook_events SET created_at = ? WHERE id = ?', [
      sqlTimestamp(new Date('2020-01-01T00:00:00Z')),
      kept.id,
    ]);
    expect(await t.app.get(WebhookRetention).purge(now)).toBe(0);
    expect((await storedEventIds(t)).has(kept.id)).toBe(true);
  });
});

describe('WEBHOOK_RETENTION_DAYS=0', () => {
  it('keeps every event for ever: no hourly purge, and a purge deletes nothing', async () => {
    const t = await startTestApp({ env: { WEBHOOK_RETENTION_DAYS: '0', WEBHOOK_POLL_INTERVAL_MS: '60000' } });
    try {
      expect([...t.app.get(SchedulerRegistry).getIntervals()]).not.toContain(WEBHOOK_RETENTION_INTERVAL);
      await createSubscription(t, 'https://hooks.example.com/x', { events: ['operation.completed'] });
      const [event] = await recordAt(t, new Date(Date.now() - 400 * DAY_MS), 1, 'delivered');
      expect(await t.app.get(WebhookRetention).purge()).toBe(0);
      expect((await storedEventIds(t)).has(event.id)).toBe(true);
    } finally {
      await t.close();
    }
  });
});
