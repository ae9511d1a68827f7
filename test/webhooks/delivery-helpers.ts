import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { QuotaDatabase } from '../../src/database/database';
import { readNullableTimestamp } from '../../src/database/sql-session';
import type { EventType } from '../../src/events/event-types';
import { EventsRepository, type RecordedEvent } from '../../src/events/events.repository';
import { sql } from '../support/quota-factories';
import type { TestApp } from '../support/test-app';

export interface ReceivedRequest {
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: string;
  readonly at: number;
  /** Resolves when the sender hung up or the answer ended (whichever first). */
  readonly closed: Promise<void>;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, nth: number) => void;

/**
 * A real HTTP receiver on 127.0.0.1 for webhook tests: records every request (path, headers, raw
 * body), answers per path with a handler (200 by default), and tracks which webhook-ids are being
 * received at the same moment, to catch two workers sending one delivery at once.
 */
export class Receiver {
  readonly requests: ReceivedRequest[] = [];
  /** `<path> <webhook-id>` that arrived while an earlier request with the same pair was still open. */
  readonly overlaps: string[] = [];
  private readonly open = new Map<string, number>();
  private readonly handlers = new Map<string, Handler>();
  private readonly server: Server;
  port = 0;

  constructor() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const path = req.url ?? '/';
        // One event goes to several subscriptions at once: only the same id to the same URL overlaps.
        const id = `${path} ${String(req.headers['webhook-id'] ?? '')}`;
        const openNow = this.open.get(id) ?? 0;
        if (openNow > 0) this.overlaps.push(id);
        this.open.set(id, openNow + 1);
        const closed = new Promise<void>((resolve) =>
          res.once('close', () => {
            this.open.set(id, (this.open.get(id) ?? 1) - 1);
            resolve();
          }),
        );
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(req.headers)) headers[name] = String(value);
        this.requests.push({ path, headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now(), closed });
        const nth = this.received(path).length;
        const handler = this.handlers.get(path) ?? ((_req, response) => response.end('ok'));
        handler(req, res, nth);
      });
    });
  }

  async start(): Promise<this> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as { port: number }).port;
    return this;
  }

  url(path: string, host = '127.0.0.1'): string {
    return `http://${host}:${this.port}${path}`;
  }

  on(path: string, handler: Handler): void {
    this.handlers.set(path, handler);
  }

  received(path: string): ReceivedRequest[] {
    return this.requests.filter((r) => r.path === path);
  }

  async waitFor(path: string, count: number, timeoutMs = 15_000): Promise<ReceivedRequest[]> {
    await until(() => Promise.resolve(this.received(path).length >= count), timeoutMs);
    return this.received(path);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, 'close');
  }
}

export async function until(check: () => Promise<boolean>, timeoutMs = 15_000, intervalMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** A response that answers only when `release()` is called (a receiver holding a request). */
export function held(status = 200): { handler: Handler; release: () => void } {
  const waiting: ServerResponse[] = [];
  let released = false;
  return {
    handler: (_req, res) => (released ? res.writeHead(status).end('ok') : waiting.push(res)),
    release: () => {
      released = true;
      for (const res of waiting.splice(0)) res.writeHead(status).end('ok');
    },
  };
}

export const newSecret = (): string => `whsec_${randomBytes(24).toString('base64')}`;

export interface SubscriptionOptions {
  readonly events?: readonly EventType[];
  readonly active?: boolean;
  readonly secret?: string;
  readonly previousSecret?: string | null;
  readonly previousSecretExpiresAt?: Date | null;
}

/** A subscription row, as the subscriptions API would store it; returns its id and secret. */
export async function createSubscription(
  t: TestApp,
  url: string,
  options: SubscriptionOptions = {},
): Promise<{ id: string; secret: string }> {
  const secret = options.secret ?? newSecret();
  const now = new Date();
  await sql(
    t,
    `INSERT INTO webhook_subscriptions (url, description, is_active, event_types, secret, previous_secret,
       previous_secret_expires_at, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [
      url,
      null,
      options.active === false ? 0 : 1,
      (options.events ?? ['webhook.test']).join(','),
      secret,
      options.previousSecret ?? null,
      options.previousSecretExpiresAt ? stamp(options.previousSecretExpiresAt) : null,
      'test',
      stamp(now),
      stamp(now),
    ],
  );
  const rows = await sql<{ id: unknown }>(t, 'SELECT id FROM webhook_subscriptions WHERE url = ? ORDER BY id DESC', [
    url,
  ]);
  return { id: String(rows[0].id), secret };
}

function stamp(date: Date): string {
  return date.toISOString().replace('T', ' ').replace('Z', '');
}

/**
 * Records an event as a producer does (EventsRepository.record in a transaction); `alsoInTransaction`
 * runs more statements in the same transaction (to set a delivery up before any worker sees it).
 */
export function recordEvent(
  t: TestApp,
  data: Record<string, unknown> = { note: 'hello' },
  alsoInTransaction?: (
    event: RecordedEvent,
    exec: (query: string, params: unknown[]) => Promise<unknown>,
  ) => Promise<unknown>,
  type: EventType = 'webhook.test',
): Promise<RecordedEvent> {
  return t.app.get(QuotaDatabase).transaction(async (s) => {
    const event = await new EventsRepository().record(s, { type, data, source: null, at: new Date() });
    if (alsoInTransaction) await alsoInTransaction(event, (query, params) => s.exec(query, params));
    return event;
  });
}

export interface StoredDelivery {
  id: string;
  subscriptionId: string;
  status: string;
  attempts: number;
  lastStatusCode: number | null;
  lastError: string | null;
  nextAttemptAt: Date | null;
  claimedUntil: Date | null;
  claimedBy: string | null;
  deliveredAt: Date | null;
}

export async function deliveriesOf(t: TestApp, eventId: string): Promise<StoredDelivery[]> {
  const rows = await sql<Record<string, unknown>>(
    t,
    `SELECT id, subscription_id, status, attempts, last_status_code, last_error, next_attempt_at, claimed_until,
            claimed_by, delivered_at FROM webhook_deliveries WHERE event_id = ? ORDER BY id`,
    [eventId],
  );
  return rows.map((r) => ({
    id: String(r.id),
    subscriptionId: String(r.subscription_id),
    status: String(r.status),
    attempts: Number(r.attempts),
    lastStatusCode: r.last_status_code === null ? null : Number(r.last_status_code),
    lastError: (r.last_error as string | null) ?? null,
    nextAttemptAt: readNullableTimestamp(r.next_attempt_at),
    claimedUntil: readNullableTimestamp(r.claimed_until),
    claimedBy: (r.claimed_by as string | null) ?? null,
    deliveredAt: readNullableTimestamp(r.delivered_at),
  }));
}

export async function deliveryOf(t: TestApp, eventId: string): Promise<StoredDelivery> {
  const all = await deliveriesOf(t, eventId);
  if (all.length !== 1) throw new Error(`expected one delivery of event ${eventId}, found ${all.length}`);
  return all[0];
}

export async function storedBody(t: TestApp, eventId: string): Promise<string> {
  const rows = await sql<{ body: string }>(t, 'SELECT body FROM webhook_events WHERE id = ?', [eventId]);
  return rows[0].body;
}

/** Stops every subscription, so later events of a suite do not fan out to earlier tests' receivers. */
export async function deactivateAll(t: TestApp): Promise<void> {
  await sql(t, 'UPDATE webhook_subscriptions SET is_active = 0');
}
