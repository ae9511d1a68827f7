import { Injectable } from '@nestjs/common';
import { AuditService } from '../audit/audit.service';
import type { Principal } from '../auth/principal';
import { NotFoundError } from '../common/app-error';
import { KeysetCursor } from '../common/keyset-cursor';
import { AppConfig } from '../config/app-config';
import { QuotaDatabase } from '../database/database';
import type { SqlSession } from '../database/sql-session';
import { EVENT_TYPES, type EventType } from '../events/event-types';
import { EventsRepository } from '../events/events.repository';
import { DeliveryLogRepository, type DeliveryRow } from './delivery-log.repository';
import { DestinationPolicy, DestinationRefused } from './destination-policy';
import type { DeliveryStatus } from './dto/webhook.dto';
import { newWebhookSecret } from './secrets';
import { SubscriptionsRepository, type SubscriptionColumns, type SubscriptionRow } from './subscriptions.repository';
import { DeliveryPendingError, WebhookInactiveError, WebhookUrlRefusedError } from './webhook.errors';

/** How long the secret a rotation replaces keeps signing beside the new one (contract §12). */
export const PREVIOUS_SECRET_OVERLAP_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_TEST_MESSAGE = 'This is a test event from the quota service.';

export interface NewWebhook {
  readonly url: string;
  readonly events: readonly EventType[];
  readonly description?: string | null;
  readonly isActive?: boolean;
}

export interface WebhookChanges {
  readonly url?: string;
  readonly events?: readonly EventType[];
  readonly description?: string | null;
  readonly isActive?: boolean;
}

/** A subscription as clients see it: never its secrets, only whether the previous one still signs. */
export interface WebhookView {
  readonly id: string;
  readonly url: string;
  readonly events: EventType[];
  readonly description: string | null;
  readonly isActive: boolean;
  readonly previousSecretExpiresAt: Date | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface WebhookWithSecret {
  readonly webhook: WebhookView;
  readonly secret: string;
}

export type DeliveryView = Omit<DeliveryRow, 'subscriptionId' | 'eventRowId'>;

export interface Page<T> {
  readonly items: T[];
  readonly nextCursor: string | null;
}

export function webhookView(row: SubscriptionRow, now = new Date()): WebhookView {
  const overlap = row.previousSecretExpiresAt;
  return {
    id: row.id,
    url: row.url,
    events: row.eventTypes,
    description: row.description,
    isActive: row.isActive,
    previousSecretExpiresAt: overlap !== null && overlap.getTime() > now.getTime() ? overlap : null,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

export function webhookJson(webhook: WebhookView) {
  return {
    id: webhook.id,
    url: webhook.url,
    events: webhook.events,
    description: webhook.description,
    is_active: webhook.isActive,
    previous_secret_expires_at: webhook.previousSecretExpiresAt?.toISOString() ?? null,
    created_at: webhook.createdAt.toISOString(),
    updated_at: webhook.updatedAt.toISOString(),
  };
}

function deliveryView(row: DeliveryRow): DeliveryView {
  const { subscriptionId: _subscription, eventRowId: _event, ...view } = row;
  return view;
}

/** The types as stored: each once, in the catalogue's order, whatever order and repeats the client sent. */
function canonicalEvents(events: readonly EventType[]): EventType[] {
  return EVENT_TYPES.filter((type) => events.includes(type));
}

const WEBHOOKS_CURSOR = new KeysetCursor('w');
const DELIVERIES_CURSOR = new KeysetCursor('d');

/**
 * Webhook subscriptions (contract §12): where events are sent, their signing secrets and their
 * delivery logs. Sending is the delivery workers' work; this service only records what they are
 * to send (a test event, a redelivery). Every change to a subscription is in the audit log,
 * without its secrets.
 */
@Injectable()
export class SubscriptionsService {
  private readonly policy: DestinationPolicy;

  constructor(
    private readonly db: QuotaDatabase,
    private readonly subscriptions: SubscriptionsRepository,
    private readonly deliveryLog: DeliveryLogRepository,
    private readonly events: EventsRepository,
    private readonly audit: AuditService,
    config: AppConfig,
  ) {
    this.policy = new DestinationPolicy(config.webhooks);
  }

  async list(cursor: string | undefined, limit: number): Promise<Page<WebhookView>> {
    const beforeId = cursor === undefined ? undefined : WEBHOOKS_CURSOR.decode(cursor);
    // One row more than asked says whether another page follows.
    const rows = await this.db.read((s) => this.subscriptions.newestFirst(s, beforeId, limit + 1));
    const now = new Date();
    const page = rows.slice(0, limit);
    return {
      items: page.map((row) => webhookView(row, now)),
      nextCursor: rows.length > limit ? WEBHOOKS_CURSOR.encode(page[page.length - 1].id) : null,
    };
  }

  async get(id: string): Promise<WebhookView> {
    return webhookView(await this.db.read((s) => this.load(s, id)));
  }

  async create(actor: Principal, input: NewWebhook): Promise<WebhookWithSecret> {
    // Resolving the host takes a DNS round trip: before the transaction, not inside it.
    await this.checkUrl(input.url);
    const secret = newWebhookSecret();
    const webhook = await this.db.transaction(
      async (s) => {
        const id = await this.subscriptions.insert(s, {
          url: input.url,
          description: input.description ?? null,
          isActive: input.isActive !== false,
          eventTypes: canonicalEvents(input.events),
          secret,
          createdBy: actor.userId,
          at: new Date(),
        });
        const created = webhookView(await this.load(s, id));
        await this.audit.record(s.manager, {
          actor,
          action: 'webhook.create',
          entityType: 'webhook_subscription',
          entityId: id,
          before: null,
          after: webhookJson(created),
        });
        return created;
      },
      { entityManager: true },
    );
    return { webhook, secret };
  }

  /** Changes the given fields; a new URL is checked as on creation. */
  async update(actor: Principal, id: string, changes: WebhookChanges): Promise<WebhookView> {
    if (changes.url !== undefined) await this.checkUrl(changes.url);
    const columns: SubscriptionColumns = {
      url: changes.url,
      description: changes.description,
      isActive: changes.isActive,
      eventTypes: changes.events === undefined ? undefined : canonicalEvents(changes.events),
    };
    return this.db.transaction(
      async (s) => {
        const before = webhookView(await this.load(s, id, true));
        if (Object.values(columns).every((value) => value === undefined)) return before;
        await this.subscriptions.update(s, id, columns, new Date());
        const after = webhookView(await this.load(s, id));
        await this.audit.record(s.manager, {
          actor,
          action: 'webhook.update',
          entityType: 'webhook_subscription',
          entityId: id,
          before: webhookJson(before),
          after: webhookJson(after),
        });
        return after;
      },
      { entityManager: true },
    );
  }

  /** Deletes the subscription and, through the foreign key, its deliveries (sent or not). */
  async remove(actor: Principal, id: string): Promise<void> {
    await this.db.transaction(
      async (s) => {
        const before = webhookView(await this.load(s, id, true));
        await this.subscriptions.delete(s, id);
        await this.audit.record(s.manager, {
          actor,
          action: 'webhook.delete',
          entityType: 'webhook_subscription',
          entityId: id,
          before: webhookJson(before),
          after: null,
        });
      },
      { entityManager: true },
    );
  }

  /**
   * A new secret. The one it replaces keeps signing beside it for 24 hours, so receivers can
   * switch over; rotating again within them replaces that previous secret, which then stops
   * signing at once (only the two newest secrets ever sign).
   */
  async rotateSecret(actor: Principal, id: string): Promise<WebhookWithSecret> {
    const secret = newWebhookSecret();
    const webhook = await this.db.transaction(
      async (s) => {
        const current = await this.subscriptions.lockedSecret(s, id);
        if (current === null) throw new NotFoundError('Webhook');
        const before = webhookView(await this.load(s, id));
        const at = new Date();
        await this.subscriptions.rotateSecret(s, id, {
          secret,
          previousSecret: current,
          previousExpiresAt: new Date(at.getTime() + PREVIOUS_SECRET_OVERLAP_MS),
          at,
        });
        const after = webhookView(await this.load(s, id), at);
        await this.audit.record(s.manager, {
          actor,
          action: 'webhook.rotate_secret',
          entityType: 'webhook_subscription',
          entityId: id,
          before: { previous_secret_expires_at: before.previousSecretExpiresAt?.toISOString() ?? null },
          after: { previous_secret_expires_at: after.previousSecretExpiresAt?.toISOString() ?? null },
        });
        return after;
      },
      { entityManager: true },
    );
    return { webhook, secret };
  }

  /**
   * Queues a `webhook.test` event for this subscription alone (whatever types it receives), with
   * its one delivery, in one transaction. An inactive subscription is refused: the workers send
   * nothing to it, so the test would wait until it is activated.
   */
  async sendTest(id: string, message: string | undefined): Promise<DeliveryView> {
    return this.db.transaction(async (s) => {
      const webhook = await this.load(s, id, true);
      if (!webhook.isActive) throw new WebhookInactiveError();
      const recorded = await this.events.recordFor(
        s,
        {
          type: 'webhook.test',
          data: { subscription_id: id, message: message ?? DEFAULT_TEST_MESSAGE },
          source: `webhook:${id}`,
          at: new Date(),
        },
        id,
      );
      return deliveryView((await this.deliveryLog.find(s, id, recorded.deliveryId))!);
    });
  }

  async deliveries(
    id: string,
    filter: { status?: DeliveryStatus; cursor?: string },
    limit: number,
  ): Promise<Page<DeliveryView>> {
    const beforeId = filter.cursor === undefined ? undefined : DELIVERIES_CURSOR.decode(filter.cursor);
    const rows = await this.db.read(async (s) => {
      await this.load(s, id);
      return this.deliveryLog.newestFirst(s, id, { status: filter.status, beforeId }, limit + 1);
    });
    const page = rows.slice(0, limit);
    return {
      items: page.map(deliveryView),
      nextCursor: rows.length > limit ? DELIVERIES_CURSOR.encode(page[page.length - 1].id) : null,
    };
  }

  /**
   * Sends an event again: a new pending delivery of the same event (the same `webhook-id`) to
   * the same subscription, due now, with its own attempts. Refused while the event still has a
   * pending delivery to it, which its retries will send anyway. The subscription's row lock
   * makes two redeliveries of one event wait for each other, so only one is queued.
   */
  async redeliver(id: string, deliveryId: string): Promise<DeliveryView> {
    return this.db.transaction(async (s) => {
      const webhook = await this.load(s, id, true);
      // Share-locked (the delivery and its event): the event log's retention cannot delete the
      // event between this read and the new delivery's insert; once it has, this reads nothing.
      const delivery = await this.deliveryLog.find(s, id, deliveryId, true);
      if (!delivery) throw new NotFoundError('Delivery');
      if (!webhook.isActive) throw new WebhookInactiveError();
      const pending = await this.deliveryLog.pendingOf(s, id, delivery.eventRowId);
      if (pending !== null) throw new DeliveryPendingError(pending);
      const newId = await this.deliveryLog.insertPending(s, id, delivery.eventRowId, new Date());
      return deliveryView((await this.deliveryLog.find(s, id, newId))!);
    });
  }

  private async load(s: SqlSession, id: string, lock = false): Promise<SubscriptionRow> {
    const row = await this.subscriptions.find(s, id, lock);
    if (!row) throw new NotFoundError('Webhook');
    return row;
  }

  private async checkUrl(url: string): Promise<void> {
    try {
      await this.policy.check(url);
    } catch (err) {
      if (err instanceof DestinationRefused) throw new WebhookUrlRefusedError(err.reason);
      throw err;
    }
  }
}
