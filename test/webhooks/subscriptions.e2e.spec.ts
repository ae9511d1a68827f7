import request, { type Response } from 'supertest';
import { readNullableTimestamp } from '../../src/database/sql-session';
import { expectProblem, ISO_MS } from '../auth/helpers';
import { bearer, loginAs, type LoggedIn } from '../support/auth';
import { sql } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';

const WEBHOOKS = '/api/v1/admin/webhooks';
const one = (id: string, tail = '') => `${WEBHOOKS}/${id}${tail}`;
const redeliverPath = (id: string, deliveryId: string) => `${WEBHOOKS}/${id}/deliveries/${deliveryId}/redeliver`;

/**
 * A public address written as a literal, so that checking it needs no DNS. The suite runs the
 * service as APP_ROLE=api: no delivery worker runs, so nothing is ever sent to it.
 */
const PUBLIC_URL = 'https://93.184.216.34/hooks/quota';
const DAY_MS = 24 * 60 * 60 * 1000;

interface SubscriptionRecord {
  url: string;
  description: string | null;
  is_active: boolean;
  event_types: string;
  secret: string;
  previous_secret: string | null;
  previous_secret_expires_at: Date | null;
  created_by: string;
}

async function storedSubscription(t: TestApp, id: string): Promise<SubscriptionRecord | null> {
  const rows = await sql<Record<string, unknown>>(
    t,
    `SELECT url, description, is_active, event_types, secret, previous_secret, previous_secret_expires_at, created_by
       FROM webhook_subscriptions WHERE id = ?`,
    [id],
  );
  if (rows.length === 0) return null;
  const row = rows[0];
  return {
    url: String(row.url),
    description: (row.description as string | null) ?? null,
    is_active: Number(row.is_active) === 1,
    event_types: String(row.event_types),
    secret: String(row.secret),
    previous_secret: (row.previous_secret as string | null) ?? null,
    previous_secret_expires_at: readNullableTimestamp(row.previous_secret_expires_at),
    created_by: String(row.created_by),
  };
}

interface StoredDelivery {
  id: string;
  subscription_id: string;
  event_id: string;
  status: string;
  attempts: number;
}

async function deliveriesOf(t: TestApp, subscriptionId: string): Promise<StoredDelivery[]> {
  const rows = await sql<Record<string, unknown>>(
    t,
    'SELECT id, subscription_id, event_id, status, attempts FROM webhook_deliveries WHERE subscription_id = ? ORDER BY id',
    [subscriptionId],
  );
  return rows.map((r) => ({
    id: String(r.id),
    subscription_id: String(r.subscription_id),
    event_id: String(r.event_id),
    status: String(r.status),
    attempts: Number(r.attempts),
  }));
}

async function auditOf(t: TestApp, id: string) {
  const rows = await sql<{
    action: string;
    actor_user_id: string | number | null;
    before_json: string | null;
    after_json: string | null;
  }>(
    t,
    "SELECT action, actor_user_id, before_json, after_json FROM admin_audit_log WHERE entity_type = 'webhook_subscription' AND entity_id = ? ORDER BY id",
    [id],
  );
  return rows.map((r) => ({
    action: r.action,
    actor: r.actor_user_id === null ? null : String(r.actor_user_id),
    before: r.before_json === null ? null : (JSON.parse(r.before_json) as Record<string, unknown>),
    after: r.after_json === null ? null : (JSON.parse(r.after_json) as Record<string, unknown>),
    raw: `${r.before_json} ${r.after_json}`,
  }));
}

/** Rows of the webhook tables and of the audit log: what a refused request must leave as it was. */
async function webhookState(t: TestApp) {
  const count = async (table: string) =>
    Number((await sql<{ n: unknown }>(t, `SELECT COUNT(*) AS n FROM ${table}`))[0].n);
  return {
    subscriptions: await sql(
      t,
      'SELECT id, url, description, is_active, event_types, secret, previous_secret, updated_at FROM webhook_subscriptions ORDER BY id',
    ),
    events: await count('webhook_events'),
    deliveries: await sql(t, 'SELECT id, status, attempts FROM webhook_deliveries ORDER BY id'),
    audit: await count('admin_audit_log'),
  };
}

function expectSecret(secret: unknown): void {
  expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
  expect(Buffer.from(String(secret).slice('whsec_'.length), 'base64')).toHaveLength(32);
}

function expectUrlRefused(res: Response, message: string): void {
  expectProblem(res, 422, 'validation_failed');
  expect(res.body.errors).toEqual([{ field: 'url', message: `url is not accepted: ${message}` }]);
}

const PRIVATE_REFUSAL = 'the host resolves to a loopback, private, link-local or metadata address';

describe('webhook subscriptions API (contract §12)', () => {
  let t: TestApp;
  let admin: LoggedIn;
  let operator: LoggedIn;
  let service: LoggedIn;
  let member: LoggedIn;

  beforeAll(async () => {
    // Neither switch: https only, public addresses only. No worker: nothing is sent anywhere.
    t = await startTestApp({ env: { THROTTLE_LIMIT: '0', APP_ROLE: 'api' } });
    admin = await loginAs(t, 'admin');
    operator = await loginAs(t, 'operator');
    service = await loginAs(t, 'service');
    member = await loginAs(t, 'member');
  });
  afterAll(async () => {
    await t?.close();
  });

  const create = (body: object, token = admin.token) => request(t.server).post(WEBHOOKS).set(bearer(token)).send(body);
  const created = async (body: object = {}) => {
    const res = await create({ url: PUBLIC_URL, events: ['anomaly.detected'], ...body });
    expect(res.status).toBe(201);
    return res.body.data as { id: string; secret: string } & Record<string, unknown>;
  };
  const sendTest = (id: string, body?: object) => {
    const req = request(t.server).post(one(id, '/test')).set(bearer(admin.token));
    return body === undefined ? req : req.send(body);
  };

  describe('create', () => {
    it('answers 201 with the subscription and its secret (whsec_ + base64 of 32 bytes), and stores both', async () => {
      const res = await create({
        url: PUBLIC_URL,
        events: ['operation.failed', 'anomaly.detected', 'operation.failed'],
        description: 'pager bridge',
      });
      expect(res.status).toBe(201);
      expect(res.body).toEqual({
        data: {
          id: expect.stringMatching(/^[1-9]\d*$/),
          url: PUBLIC_URL,
          // Each type once, in the catalogue's order.
          events: ['anomaly.detected', 'operation.failed'],
          description: 'pager bridge',
          is_active: true,
          previous_secret_expires_at: null,
          created_at: expect.stringMatching(ISO_MS),
          updated_at: expect.stringMatching(ISO_MS),
          secret: expect.any(String),
        },
      });
      const data = res.body.data;
      expectSecret(data.secret);
      expect(await storedSubscription(t, data.id)).toEqual({
        url: PUBLIC_URL,
        description: 'pager bridge',
        is_active: true,
        event_types: 'anomaly.detected,operation.failed',
        secret: data.secret,
        previous_secret: null,
        previous_secret_expires_at: null,
        created_by: admin.userId,
      });
      const audit = await auditOf(t, data.id);
      expect(audit).toEqual([
        {
          action: 'webhook.create',
          actor: admin.userId,
          before: null,
          after: { ...data, secret: undefined },
          raw: expect.any(String),
        },
      ]);
      expect(audit[0].after).not.toHaveProperty('secret');
      expect(audit[0].raw).not.toContain('whsec_');
    });

    it('gives every subscription its own secret, and is_active: false is kept', async () => {
      const a = await created();
      const b = await created({ is_active: false, description: null });
      expect(a.secret).not.toBe(b.secret);
      expect(b).toMatchObject({ is_active: false, description: null });
      expect((await storedSubscription(t, b.id))?.is_active).toBe(false);
    });
  });

  describe('read', () => {
    it('GET :id shows the subscription without its secret, to admins and operators', async () => {
      const made = await created({ events: ['hold.expired'] });
      for (const token of [admin.token, operator.token]) {
        const res = await request(t.server).get(one(made.id)).set(bearer(token));
        expect(res.status).toBe(200);
        const { secret: _secret, ...view } = made;
        expect(res.body).toEqual({ data: view });
        expect(JSON.stringify(res.body)).not.toContain('whsec_');
      }
    });

    it('lists newest first with keyset pagination, never with secrets', async () => {
      const ids = [(await created()).id, (await created()).id, (await created()).id];
      const first = await request(t.server).get(`${WEBHOOKS}?limit=2`).set(bearer(operator.token));
      expect(first.status).toBe(200);
      expect(first.body.data.map((w: { id: string }) => w.id)).toEqual([ids[2], ids[1]]);
      expect(first.body.meta).toEqual({ limit: 2, next_cursor: expect.any(String) });
      const second = await request(t.server)
        .get(`${WEBHOOKS}?limit=2&cursor=${first.body.meta.next_cursor}`)
        .set(bearer(operator.token));
      expect(second.status).toBe(200);
      expect(second.body.data[0].id).toBe(ids[0]);
      expect(JSON.stringify([first.body, second.body])).not.toContain('whsec_');

      // Walking every page gives every subscription once, and the last page says so.
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page: Response = await request(t.server)
          .get(`${WEBHOOKS}?limit=3${cursor ? `&cursor=${cursor}` : ''}`)
          .set(bearer(admin.token));
        expect(page.status).toBe(200);
        seen.push(...page.body.data.map((w: { id: string }) => w.id));
        cursor = page.body.meta.next_cursor;
      } while (cursor !== null);
      const stored = await sql<{ id: unknown }>(t, 'SELECT id FROM webhook_subscriptions ORDER BY id DESC');
      expect(seen).toEqual(stored.map((r) => String(r.id)));
    });

    it('answers 404 for an unknown or malformed id', async () => {
      for (const id of ['987654321', 'abc', '-1', '1.5', '99999999999999999999']) {
        expectProblem(await request(t.server).get(one(id)).set(bearer(admin.token)), 404, 'not_found');
      }
    });
  });

  describe('update', () => {
    it('changes only the fields given, checks a new url again, and is audited', async () => {
      const made = await created({ description: 'old', events: ['anomaly.detected', 'hold.expired'] });
      const before = await storedSubscription(t, made.id);

      const res = await request(t.server)
        .patch(one(made.id))
        .set(bearer(admin.token))
        .send({ description: 'new', events: ['operation.completed', 'operation.completed'] });
      expect(res.status).toBe(200);
      expect(res.body.data).toEqual({
        ...made,
        secret: undefined,
        description: 'new',
        events: ['operation.completed'],
        updated_at: expect.stringMatching(ISO_MS),
      });
      expect(res.body.data).not.toHaveProperty('secret');
      expect(await storedSubscription(t, made.id)).toEqual({
        ...before,
        description: 'new',
        event_types: 'operation.completed',
      });

      const moved = await request(t.server)
        .patch(one(made.id))
        .set(bearer(admin.token))
        .send({ url: 'https://93.184.216.35/other', is_active: false });
      expect(moved.status).toBe(200);
      expect(moved.body.data).toMatchObject({ url: 'https://93.184.216.35/other', is_active: false });

      const cleared = await request(t.server).patch(one(made.id)).set(bearer(admin.token)).send({ description: null });
      expect(cleared.body.data.description).toBeNull();

      const audit = await auditOf(t, made.id);
      expect(audit.map((a) => a.action)).toEqual([
        'webhook.create',
        'webhook.update',
        'webhook.update',
        'webhook.update',
      ]);
      expect(audit[1].before).toMatchObject({ description: 'old', events: ['anomaly.detected', 'hold.expired'] });
      expect(audit[1].after).toMatchObject({ description: 'new', events: ['operation.completed'] });
      expect(audit.map((a) => a.raw).join(' ')).not.toContain('whsec_');
      // The secret is untouched by updates.
      expect((await storedSubscription(t, made.id))?.secret).toBe(made.secret);
    });

    it('an empty PATCH changes nothing and writes no audit row', async () => {
      const made = await created();
      const before = await webhookState(t);
      const res = await request(t.server).patch(one(made.id)).set(bearer(admin.token)).send({});
      expect(res.status).toBe(200);
      expect(res.body.data).toEqual({ ...made, secret: undefined });
      expect(await webhookState(t)).toEqual(before);
    });

    it('refuses a new url the policy refuses, changing nothing', async () => {
      const made = await created();
      const before = await webhookState(t);
      expectUrlRefused(
        await request(t.server).patch(one(made.id)).set(bearer(admin.token)).send({ url: 'https://127.0.0.1/x' }),
        PRIVATE_REFUSAL,
      );
      expectUrlRefused(
        await request(t.server).patch(one(made.id)).set(bearer(admin.token)).send({ url: 'http://93.184.216.34/x' }),
        'only https URLs are accepted',
      );
      expect(await webhookState(t)).toEqual(before);
    });

    it('answers 404 for an unknown id', async () => {
      expectProblem(
        await request(t.server).patch(one('987654321')).set(bearer(admin.token)).send({ description: 'x' }),
        404,
        'not_found',
      );
    });
  });

  describe('rotate-secret', () => {
    it('gives a new secret; the old one signs for 24 h more; a second rotation replaces that previous one', async () => {
      const made = await created();
      const startedAt = Date.now();
      const first = await request(t.server).post(one(made.id, '/rotate-secret')).set(bearer(admin.token));
      expect(first.status).toBe(200);
      expectSecret(first.body.data.secret);
      expect(first.body.data.secret).not.toBe(made.secret);
      expect(first.body.data).toMatchObject({ id: made.id, url: PUBLIC_URL, events: ['anomaly.detected'] });
      const overlapEnds = Date.parse(first.body.data.previous_secret_expires_at);
      expect(overlapEnds).toBeGreaterThanOrEqual(startedAt + DAY_MS);
      expect(overlapEnds).toBeLessThanOrEqual(Date.now() + DAY_MS);

      const stored = await storedSubscription(t, made.id);
      expect(stored).toMatchObject({ secret: first.body.data.secret, previous_secret: made.secret });
      expect(stored?.previous_secret_expires_at?.toISOString()).toBe(first.body.data.previous_secret_expires_at);

      // Reading shows the overlap, never a secret.
      const read = await request(t.server).get(one(made.id)).set(bearer(operator.token));
      expect(read.body.data.previous_secret_expires_at).toBe(first.body.data.previous_secret_expires_at);
      expect(read.body.data).not.toHaveProperty('secret');
      expect(JSON.stringify(read.body)).not.toContain('whsec_');

      const second = await request(t.server).post(one(made.id, '/rotate-secret')).set(bearer(admin.token));
      expect(second.status).toBe(200);
      expect(new Set([made.secret, first.body.data.secret, second.body.data.secret]).size).toBe(3);
      // The first secret signs no more: only the current one and the one just replaced.
      expect(await storedSubscription(t, made.id)).toMatchObject({
        secret: second.body.data.secret,
        previous_secret: first.body.data.secret,
      });
      expect(Date.parse(second.body.data.previous_secret_expires_at)).toBeGreaterThanOrEqual(overlapEnds);

      const audit = await auditOf(t, made.id);
      expect(audit.map((a) => a.action)).toEqual(['webhook.create', 'webhook.rotate_secret', 'webhook.rotate_secret']);
      expect(audit[1]).toMatchObject({
        before: { previous_secret_expires_at: null },
        after: { previous_secret_expires_at: first.body.data.previous_secret_expires_at },
      });
      expect(audit.map((a) => a.raw).join(' ')).not.toContain('whsec_');
    });

    it('shows no overlap once the previous secret has expired', async () => {
      const made = await created();
      await request(t.server).post(one(made.id, '/rotate-secret')).set(bearer(admin.token)).expect(200);
      await sql(t, 'UPDATE webhook_subscriptions SET previous_secret_expires_at = ? WHERE id = ?', [
        '2020-01-01 00:00:00.000',
        made.id,
      ]);
      const read = await request(t.server).get(one(made.id)).set(bearer(admin.token));
      expect(read.body.data.previous_secret_expires_at).toBeNull();
    });

    it('answers 404 for an unknown id', async () => {
      expectProblem(
        await request(t.server).post(one('987654321', '/rotate-secret')).set(bearer(admin.token)),
        404,
        'not_found',
      );
    });
  });

  describe('test event', () => {
    it('queues one webhook.test event with one delivery, for this subscription only, whatever its types', async () => {
      const target = await created({ events: ['hold.expired'] });
      // Another active subscription that does list webhook.test gets nothing.
      const bystander = await created({ events: ['webhook.test', 'anomaly.detected'] });
      const eventsBefore = Number((await sql<{ n: unknown }>(t, 'SELECT COUNT(*) AS n FROM webhook_events'))[0].n);

      const res = await sendTest(target.id);
      expect(res.status).toBe(202);
      expect(res.body).toEqual({
        data: {
          id: expect.stringMatching(/^[1-9]\d*$/),
          event_id: expect.stringMatching(/^msg_[A-Za-z0-9_-]{24}$/),
          event_type: 'webhook.test',
          status: 'pending',
          attempts: 0,
          last_status_code: null,
          last_error: null,
          next_attempt_at: expect.stringMatching(ISO_MS),
          created_at: expect.stringMatching(ISO_MS),
          updated_at: expect.stringMatching(ISO_MS),
          delivered_at: null,
        },
      });
      expect(Date.parse(res.body.data.next_attempt_at)).toBeLessThanOrEqual(Date.now());

      const events = await sql<Record<string, unknown>>(
        t,
        'SELECT id, uid, type, source, body FROM webhook_events WHERE uid = ?',
        [res.body.data.event_id],
      );
      expect(events).toHaveLength(1);
      expect(Number((await sql<{ n: unknown }>(t, 'SELECT COUNT(*) AS n FROM webhook_events'))[0].n)).toBe(
        eventsBefore + 1,
      );
      expect(events[0]).toMatchObject({ type: 'webhook.test', source: `webhook:${target.id}` });
      const body = JSON.parse(String(events[0].body));
      expect(body).toEqual({
        type: 'webhook.test',
        timestamp: expect.stringMatching(ISO_MS),
        data: { subscription_id: target.id, message: 'This is a test event from the quota service.' },
      });
      expect(Object.keys(body)).toEqual(['type', 'timestamp', 'data']);

      const all = await sql<{ subscription_id: unknown }>(
        t,
        'SELECT subscription_id FROM webhook_deliveries WHERE event_id = ?',
        [events[0].id],
      );
      expect(all.map((r) => String(r.subscription_id))).toEqual([target.id]);
      expect(await deliveriesOf(t, target.id)).toEqual([
        {
          id: res.body.data.id,
          subscription_id: target.id,
          event_id: String(events[0].id),
          status: 'pending',
          attempts: 0,
        },
      ]);
      expect(await deliveriesOf(t, bystander.id)).toEqual([]);
    });

    it('carries a message given in the body; an empty body with a JSON Content-Type is the default', async () => {
      const made = await created();
      const custom = await sendTest(made.id, { message: 'hello from the runbook' });
      expect(custom.status).toBe(202);
      const [event] = await sql<{ body: string }>(t, 'SELECT body FROM webhook_events WHERE uid = ?', [
        custom.body.data.event_id,
      ]);
      expect(JSON.parse(event.body).data).toEqual({ subscription_id: made.id, message: 'hello from the runbook' });

      const empty = await request(t.server)
        .post(one(made.id, '/test'))
        .set(bearer(admin.token))
        .set('Content-Type', 'application/json');
      expect(empty.status).toBe(202);
      expect(empty.body.data.event_id).not.toBe(custom.body.data.event_id);
    });

    it('refuses an inactive subscription (409 webhook_inactive) and an unknown one (404), writing nothing', async () => {
      const inactive = await created({ is_active: false });
      const before = await webhookState(t);
      expectProblem(await sendTest(inactive.id), 409, 'webhook_inactive');
      expectProblem(await sendTest('987654321'), 404, 'not_found');
      expect(await webhookState(t)).toEqual(before);
    });
  });

  describe('deliveries and redelivery', () => {
    it("lists a subscription's deliveries newest first, filtered by status, with keyset pagination", async () => {
      const made = await created();
      const other = await created();
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push((await sendTest(made.id)).body.data.id);
      await sendTest(other.id).expect(202);
      await sql(
        t,
        "UPDATE webhook_deliveries SET status = 'delivered', attempts = 1, last_status_code = 204, next_attempt_at = NULL, delivered_at = updated_at WHERE id = ?",
        [ids[1]],
      );

      const all = await request(t.server).get(one(made.id, '/deliveries')).set(bearer(operator.token));
      expect(all.status).toBe(200);
      expect(all.body.data.map((d: { id: string }) => d.id)).toEqual([ids[2], ids[1], ids[0]]);
      expect(all.body.meta).toEqual({ limit: 50, next_cursor: null });
      expect(all.body.data[1]).toMatchObject({
        status: 'delivered',
        attempts: 1,
        last_status_code: 204,
        next_attempt_at: null,
        delivered_at: expect.stringMatching(ISO_MS),
      });

      const delivered = await request(t.server)
        .get(one(made.id, '/deliveries?status=delivered'))
        .set(bearer(admin.token));
      expect(delivered.body.data.map((d: { id: string }) => d.id)).toEqual([ids[1]]);
      const pending = await request(t.server).get(one(made.id, '/deliveries?status=pending')).set(bearer(admin.token));
      expect(pending.body.data.map((d: { id: string }) => d.id)).toEqual([ids[2], ids[0]]);

      const page1 = await request(t.server).get(one(made.id, '/deliveries?limit=2')).set(bearer(admin.token));
      expect(page1.body.data.map((d: { id: string }) => d.id)).toEqual([ids[2], ids[1]]);
      const page2 = await request(t.server)
        .get(one(made.id, `/deliveries?limit=2&cursor=${page1.body.meta.next_cursor}`))
        .set(bearer(admin.token));
      expect(page2.body).toMatchObject({ meta: { limit: 2, next_cursor: null } });
      expect(page2.body.data.map((d: { id: string }) => d.id)).toEqual([ids[0]]);

      expectProblem(
        await request(t.server).get(one('987654321', '/deliveries')).set(bearer(admin.token)),
        404,
        'not_found',
      );
      // Another list's cursor is refused.
      const listCursor = Buffer.from('w:5').toString('base64url');
      expectProblem(
        await request(t.server)
          .get(one(made.id, `/deliveries?cursor=${listCursor}`))
          .set(bearer(admin.token)),
        422,
        'validation_failed',
      );
    });

    it('redelivers an event as a new pending delivery with the same webhook-id, refused while one is pending', async () => {
      const made = await created();
      const queued = (await sendTest(made.id)).body.data;

      // The event's first delivery is still pending: its own retries will send it.
      const refused = await request(t.server).post(redeliverPath(made.id, queued.id)).set(bearer(admin.token));
      expectProblem(refused, 409, 'delivery_pending');
      expect(refused.body.delivery_id).toBe(queued.id);
      expect(await deliveriesOf(t, made.id)).toHaveLength(1);

      await sql(
        t,
        "UPDATE webhook_deliveries SET status = 'failed', attempts = 9, last_status_code = 500, last_error = 'HTTP 500', next_attempt_at = NULL WHERE id = ?",
        [queued.id],
      );
      const startedAt = Date.now();
      const res = await request(t.server).post(redeliverPath(made.id, queued.id)).set(bearer(admin.token));
      expect(res.status).toBe(202);
      expect(res.body.data).toEqual({
        id: expect.stringMatching(/^[1-9]\d*$/),
        event_id: queued.event_id,
        event_type: 'webhook.test',
        status: 'pending',
        attempts: 0,
        last_status_code: null,
        last_error: null,
        next_attempt_at: expect.stringMatching(ISO_MS),
        created_at: expect.stringMatching(ISO_MS),
        updated_at: expect.stringMatching(ISO_MS),
        delivered_at: null,
      });
      expect(res.body.data.id).not.toBe(queued.id);
      // Due now.
      expect(Math.abs(Date.parse(res.body.data.next_attempt_at) - startedAt)).toBeLessThan(5_000);

      const stored = await deliveriesOf(t, made.id);
      expect(stored).toEqual([
        { id: queued.id, subscription_id: made.id, event_id: stored[0].event_id, status: 'failed', attempts: 9 },
        {
          id: res.body.data.id,
          subscription_id: made.id,
          event_id: stored[0].event_id,
          status: 'pending',
          attempts: 0,
        },
      ]);
      // No new event: the same event, hence the same webhook-id.
      const [event] = await sql<{ uid: string }>(t, 'SELECT uid FROM webhook_events WHERE id = ?', [
        stored[0].event_id,
      ]);
      expect(event.uid).toBe(queued.event_id);

      // Now the redelivery is the pending one: asking again (from either delivery) is refused.
      for (const id of [queued.id, res.body.data.id]) {
        expectProblem(
          await request(t.server).post(redeliverPath(made.id, id)).set(bearer(admin.token)),
          409,
          'delivery_pending',
        );
      }
      expect(await deliveriesOf(t, made.id)).toHaveLength(2);
    });

    it('answers 404 for a delivery of another subscription or an unknown one, and 409 on an inactive subscription', async () => {
      const mine = await created();
      const theirs = await created();
      const theirDelivery = (await sendTest(theirs.id)).body.data;
      await sql(t, "UPDATE webhook_deliveries SET status = 'delivered', next_attempt_at = NULL WHERE id = ?", [
        theirDelivery.id,
      ]);
      const myDelivery = (await sendTest(mine.id)).body.data;
      await sql(t, "UPDATE webhook_deliveries SET status = 'delivered', next_attempt_at = NULL WHERE id = ?", [
        myDelivery.id,
      ]);
      const before = await webhookState(t);
      for (const [subscription, delivery] of [
        [mine.id, theirDelivery.id],
        [mine.id, '987654321'],
        [mine.id, 'abc'],
        ['987654321', myDelivery.id],
      ]) {
        expectProblem(
          await request(t.server).post(redeliverPath(subscription, delivery)).set(bearer(admin.token)),
          404,
          'not_found',
        );
      }
      await request(t.server).patch(one(mine.id)).set(bearer(admin.token)).send({ is_active: false }).expect(200);
      const afterPatch = await webhookState(t);
      expectProblem(
        await request(t.server).post(redeliverPath(mine.id, myDelivery.id)).set(bearer(admin.token)),
        409,
        'webhook_inactive',
      );
      expect(await webhookState(t)).toEqual(afterPatch);
      expect(afterPatch.deliveries).toEqual(before.deliveries);
    });
  });

  describe('delete', () => {
    it('answers 204 and removes the subscription with its deliveries; the event log keeps its events', async () => {
      const made = await created();
      const kept = await created();
      await sendTest(made.id).expect(202);
      await sendTest(made.id).expect(202);
      const keptDelivery = (await sendTest(kept.id)).body.data;
      expect(await deliveriesOf(t, made.id)).toHaveLength(2);
      const eventsBefore = Number((await sql<{ n: unknown }>(t, 'SELECT COUNT(*) AS n FROM webhook_events'))[0].n);

      const res = await request(t.server).delete(one(made.id)).set(bearer(admin.token));
      expect(res.status).toBe(204);
      expect(res.text).toBe('');
      expect(await storedSubscription(t, made.id)).toBeNull();
      expect(await deliveriesOf(t, made.id)).toEqual([]);
      expect((await deliveriesOf(t, kept.id)).map((d) => d.id)).toEqual([keptDelivery.id]);
      expect(Number((await sql<{ n: unknown }>(t, 'SELECT COUNT(*) AS n FROM webhook_events'))[0].n)).toBe(
        eventsBefore,
      );

      expectProblem(await request(t.server).get(one(made.id)).set(bearer(admin.token)), 404, 'not_found');
      expectProblem(await request(t.server).delete(one(made.id)).set(bearer(admin.token)), 404, 'not_found');

      const audit = await auditOf(t, made.id);
      expect(audit.map((a) => a.action)).toEqual(['webhook.create', 'webhook.delete']);
      expect(audit[1]).toMatchObject({ actor: admin.userId, before: { id: made.id, url: PUBLIC_URL }, after: null });
      expect(audit[1].raw).not.toContain('whsec_');
    });
  });

  describe('roles: admins write, operators read, service and member are refused', () => {
    it('refuses each endpoint to the roles it does not allow, changing nothing', async () => {
      const made = await created();
      const delivery = (await sendTest(made.id)).body.data;
      await sql(t, "UPDATE webhook_deliveries SET status = 'delivered', next_attempt_at = NULL WHERE id = ?", [
        delivery.id,
      ]);
      const endpoints: Array<{ name: string; call: (token: string) => request.Test; readers: boolean }> = [
        { name: 'list', call: (x) => request(t.server).get(WEBHOOKS).set(bearer(x)), readers: true },
        { name: 'get', call: (x) => request(t.server).get(one(made.id)).set(bearer(x)), readers: true },
        {
          name: 'deliveries',
          call: (x) => request(t.server).get(one(made.id, '/deliveries')).set(bearer(x)),
          readers: true,
        },
        {
          name: 'create',
          call: (x) =>
            request(t.server)
              .post(WEBHOOKS)
              .set(bearer(x))
              .send({ url: PUBLIC_URL, events: ['hold.expired'] }),
          readers: false,
        },
        {
          name: 'update',
          call: (x) => request(t.server).patch(one(made.id)).set(bearer(x)).send({ description: 'taken over' }),
          readers: false,
        },
        { name: 'delete', call: (x) => request(t.server).delete(one(made.id)).set(bearer(x)), readers: false },
        {
          name: 'rotate',
          call: (x) => request(t.server).post(one(made.id, '/rotate-secret')).set(bearer(x)),
          readers: false,
        },
        { name: 'test', call: (x) => request(t.server).post(one(made.id, '/test')).set(bearer(x)), readers: false },
        {
          name: 'redeliver',
          call: (x) => request(t.server).post(redeliverPath(made.id, delivery.id)).set(bearer(x)),
          readers: false,
        },
      ];
      const before = await webhookState(t);
      for (const endpoint of endpoints) {
        const refusedTo = endpoint.readers ? [service, member] : [operator, service, member];
        for (const caller of refusedTo) {
          const res = await endpoint.call(caller.token);
          expect({ endpoint: endpoint.name, role: caller.role, status: res.status }).toEqual({
            endpoint: endpoint.name,
            role: caller.role,
            status: 403,
          });
          expectProblem(res, 403, 'forbidden');
        }
      }
      expect(await webhookState(t)).toEqual(before);
      // The readers do read.
      for (const endpoint of endpoints.filter((e) => e.readers)) {
        expect((await endpoint.call(operator.token)).status).toBe(200);
      }
    });
  });

  describe('bad input is refused and changes nothing', () => {
    interface Case {
      readonly name: string;
      readonly body?: unknown;
      readonly raw?: string;
      readonly status?: number;
      readonly code?: string;
      readonly field?: string;
      /** The exact message on `url` (destination refusals). */
      readonly urlRefusal?: string;
    }
    const valid = { url: PUBLIC_URL, events: ['anomaly.detected'] };
    const createCases: Case[] = [
      { name: 'url missing', body: { events: ['anomaly.detected'] }, field: 'url' },
      { name: 'url not a string', body: { ...valid, url: 5 }, field: 'url' },
      { name: 'url null', body: { ...valid, url: null }, field: 'url' },
      { name: 'url too long', body: { ...valid, url: `https://93.184.216.34/${'x'.repeat(2048)}` }, field: 'url' },
      { name: 'url empty', body: { ...valid, url: '' }, urlRefusal: 'not a valid absolute URL' },
      { name: 'url relative', body: { ...valid, url: '/hooks' }, urlRefusal: 'not a valid absolute URL' },
      { name: 'url ftp', body: { ...valid, url: 'ftp://93.184.216.34/x' }, urlRefusal: 'only https URLs are accepted' },
      {
        name: 'http without WEBHOOK_ALLOW_HTTP',
        body: { ...valid, url: 'http://93.184.216.34/x' },
        urlRefusal: 'only https URLs are accepted',
      },
      {
        name: 'credentials in the url',
        body: { ...valid, url: 'https://user:pw@93.184.216.34/x' },
        urlRefusal: 'URLs with a user name or password are not accepted',
      },
      { name: 'loopback literal', body: { ...valid, url: 'https://127.0.0.1/x' }, urlRefusal: PRIVATE_REFUSAL },
      { name: 'localhost', body: { ...valid, url: 'https://localhost:8443/x' }, urlRefusal: PRIVATE_REFUSAL },
      { name: 'IPv6 loopback', body: { ...valid, url: 'https://[::1]/x' }, urlRefusal: PRIVATE_REFUSAL },
      { name: 'private network', body: { ...valid, url: 'https://10.1.2.3/x' }, urlRefusal: PRIVATE_REFUSAL },
      {
        name: 'metadata address',
        body: { ...valid, url: 'https://169.254.169.254/latest' },
        urlRefusal: PRIVATE_REFUSAL,
      },
      {
        name: 'IPv4-mapped loopback',
        body: { ...valid, url: 'https://[::ffff:127.0.0.1]/x' },
        urlRefusal: PRIVATE_REFUSAL,
      },
      { name: 'events missing', body: { url: PUBLIC_URL }, field: 'events' },
      { name: 'events empty', body: { ...valid, events: [] }, field: 'events' },
      { name: 'events a string', body: { ...valid, events: 'anomaly.detected' }, field: 'events' },
      {
        name: 'events unknown type',
        body: { ...valid, events: ['anomaly.detected', 'member.created'] },
        field: 'events',
      },
      { name: 'events not strings', body: { ...valid, events: [5] }, field: 'events' },
      { name: 'description too long', body: { ...valid, description: 'x'.repeat(501) }, field: 'description' },
      { name: 'description not a string', body: { ...valid, description: 5 }, field: 'description' },
      { name: 'is_active a string', body: { ...valid, is_active: 'yes' }, field: 'is_active' },
      { name: 'secret is not assignable', body: { ...valid, secret: 'whsec_AAAA' }, field: 'secret' },
      { name: 'unknown field', body: { ...valid, event_types: 'anomaly.detected' }, field: 'event_types' },
      { name: 'body is an array', body: [valid] },
      { name: 'malformed JSON', raw: '{"url": ', status: 400, code: 'malformed_json' },
      { name: 'empty body', raw: '', status: 400, code: 'malformed_json' },
    ];

    const check = (res: Response, c: Case) => {
      const status = c.status ?? 422;
      const code = c.code ?? 'validation_failed';
      expect({ case: c.name, status: res.status, code: res.body?.code }).toEqual({ case: c.name, status, code });
      expectProblem(res, status, code);
      if (c.urlRefusal) expectUrlRefused(res, c.urlRefusal);
      if (c.field) {
        expect({ case: c.name, fields: res.body.errors.map((e: { field: string }) => e.field) }).toEqual({
          case: c.name,
          fields: expect.arrayContaining([c.field]),
        });
      }
      // Our own words only: no resolver, driver or library text.
      expect(JSON.stringify(res.body)).not.toMatch(/ENOTFOUND|EAI_|getaddrinfo|ipaddr|ERR_INVALID_URL|TypeError/);
    };

    it.each(createCases.map((c) => [c.name, c] as const))('create: %s', async (_name, c) => {
      const before = await webhookState(t);
      let req = request(t.server).post(WEBHOOKS).set(bearer(admin.token));
      req = c.raw !== undefined ? req.set('Content-Type', 'application/json').send(c.raw) : req.send(c.body as object);
      check(await req, c);
      expect(await webhookState(t)).toEqual(before);
    });

    it('update: the same checks on every field given', async () => {
      const made = await created();
      const before = await webhookState(t);
      const cases: Case[] = [
        { name: 'events empty', body: { events: [] }, field: 'events' },
        { name: 'events unknown', body: { events: ['nope'] }, field: 'events' },
        { name: 'url null', body: { url: null }, field: 'url' },
        { name: 'url private', body: { url: 'https://192.168.1.10/x' }, urlRefusal: PRIVATE_REFUSAL },
        {
          name: 'url with credentials',
          body: { url: 'https://a:b@93.184.216.34/' },
          urlRefusal: 'URLs with a user name or password are not accepted',
        },
        { name: 'is_active null', body: { is_active: null }, field: 'is_active' },
        { name: 'description too long', body: { description: 'x'.repeat(501) }, field: 'description' },
        { name: 'secret is not assignable', body: { secret: 'whsec_AAAA' }, field: 'secret' },
        { name: 'id is not assignable', body: { id: '7' }, field: 'id' },
        { name: 'malformed JSON', raw: '{', status: 400, code: 'malformed_json' },
      ];
      for (const c of cases) {
        let req = request(t.server).patch(one(made.id)).set(bearer(admin.token));
        req =
          c.raw !== undefined ? req.set('Content-Type', 'application/json').send(c.raw) : req.send(c.body as object);
        check(await req, c);
      }
      expect(await webhookState(t)).toEqual(before);
    });

    it('query parameters: bad limit, cursor or status, and unknown ones', async () => {
      const made = await created();
      const before = await webhookState(t);
      const cases: Array<[string, string]> = [
        [`${WEBHOOKS}?limit=0`, 'limit'],
        [`${WEBHOOKS}?limit=501`, 'limit'],
        [`${WEBHOOKS}?limit=ten`, 'limit'],
        [`${WEBHOOKS}?cursor=${Buffer.from('q:5').toString('base64url')}`, 'cursor'],
        [`${WEBHOOKS}?cursor=not%20a%20cursor`, 'cursor'],
        [`${WEBHOOKS}?is_active=true`, 'is_active'],
        [one(made.id, '?expand=secret'), 'expand'],
        [one(made.id, '/deliveries?status=sent'), 'status'],
        [one(made.id, '/deliveries?limit=-1'), 'limit'],
      ];
      for (const [path, field] of cases) {
        const res = await request(t.server).get(path).set(bearer(admin.token));
        expectProblem(res, 422, 'validation_failed');
        expect({ path, fields: [...new Set(res.body.errors.map((e: { field: string }) => e.field))] }).toEqual({
          path,
          fields: [field],
        });
      }
      for (const path of [one(made.id, '/rotate-secret?x=1'), one(made.id, '/test?x=1')]) {
        expectProblem(await request(t.server).post(path).set(bearer(admin.token)), 422, 'validation_failed');
      }
      expectProblem(
        await request(t.server)
          .post(one(made.id, '/test'))
          .set(bearer(admin.token))
          .send({ message: 'x'.repeat(501) }),
        422,
        'validation_failed',
      );
      expectProblem(
        await request(t.server).post(one(made.id, '/test')).set(bearer(admin.token)).send({ subscription_id: '1' }),
        422,
        'validation_failed',
      );
      expect(await webhookState(t)).toEqual(before);
    });
  });
});

describe('webhook destinations with WEBHOOK_ALLOW_HTTP and WEBHOOK_ALLOW_PRIVATE_NETWORKS', () => {
  let t: TestApp;
  let admin: LoggedIn;

  beforeAll(async () => {
    // No worker here either: the loopback URLs below are only stored, never called.
    t = await startTestApp({
      env: { APP_ROLE: 'api', WEBHOOK_ALLOW_HTTP: 'true', WEBHOOK_ALLOW_PRIVATE_NETWORKS: 'true' },
    });
    admin = await loginAs(t, 'admin');
  });
  afterAll(async () => {
    await t?.close();
  });

  it('accepts http and loopback or private destinations, but never credentials or other schemes', async () => {
    for (const url of [
      'http://127.0.0.1:9/hook',
      'http://localhost:9/hook',
      'https://[::1]:9/hook',
      'https://10.1.2.3/x',
    ]) {
      const res = await request(t.server)
        .post(WEBHOOKS)
        .set(bearer(admin.token))
        .send({ url, events: ['hold.expired'] });
      expect({ url, status: res.status }).toEqual({ url, status: 201 });
      expect((await storedSubscription(t, res.body.data.id))?.url).toBe(url);
    }
    const before = await sql(t, 'SELECT id FROM webhook_subscriptions ORDER BY id');
    expectUrlRefused(
      await request(t.server)
        .post(WEBHOOKS)
        .set(bearer(admin.token))
        .send({ url: 'http://user:pw@127.0.0.1:9/', events: ['hold.expired'] }),
      'URLs with a user name or password are not accepted',
    );
    expectUrlRefused(
      await request(t.server)
        .post(WEBHOOKS)
        .set(bearer(admin.token))
        .send({ url: 'ftp://127.0.0.1/x', events: ['hold.expired'] }),
      'only https URLs are accepted',
    );
    expect(await sql(t, 'SELECT id FROM webhook_subscriptions ORDER BY id')).toEqual(before);
  });
});
