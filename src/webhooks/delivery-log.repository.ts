import { Injectable } from '@nestjs/common';
import type { EventType } from '../events/event-types';
import { readNullableTimestamp, readTimestamp, sqlTimestamp, type SqlSession } from '../database/sql-session';
import type { DeliveryStatus } from './dto/webhook.dto';

/** A delivery as its subscription's log shows it, with its event's `webhook-id` and type. */
export interface DeliveryRow {
  readonly id: string;
  readonly subscriptionId: string;
  /** webhook_events.id, the event row (not shown to clients). */
  readonly eventRowId: string;
  /** The event's uid: the `webhook-id` header. */
  readonly eventUid: string;
  readonly eventType: EventType;
  readonly status: DeliveryStatus;
  readonly attempts: number;
  readonly lastStatusCode: number | null;
  readonly lastError: string | null;
  readonly nextAttemptAt: Date | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly deliveredAt: Date | null;
}

export interface DeliveryLogFilter {
  readonly status?: DeliveryStatus;
  /** Keyset cursor: deliveries with smaller ids. */
  readonly beforeId?: string;
}

const COLUMNS = `d.id, d.subscription_id, d.event_id, e.uid AS event_uid, e.type AS event_type, d.status, d.attempts,
  d.last_status_code, d.last_error, d.next_attempt_at, d.created_at, d.updated_at, d.delivered_at`;
const FROM = 'webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id';

/**
 * A subscription's delivery log (webhook_deliveries with their events), and redeliveries: a new
 * pending delivery of an event the subscription already had. The workers' claims and results
 * are not here.
 */
@Injectable()
export class DeliveryLogRepository {
  /** Newest first, keyset-paginated on the id (index idx_webhook_deliveries_subscription). */
  async newestFirst(
    s: SqlSession,
    subscriptionId: string,
    filter: DeliveryLogFilter,
    limit: number,
  ): Promise<DeliveryRow[]> {
    const where = ['d.subscription_id = ?'];
    const params: unknown[] = [subscriptionId];
    if (filter.status !== undefined) {
      where.push('d.status = ?');
      params.push(filter.status);
    }
    if (filter.beforeId !== undefined) {
      where.push('d.id < ?');
      params.push(filter.beforeId);
    }
    const rows = await s.rows<Record<string, unknown>>(
      `SELECT ${COLUMNS} FROM ${FROM} WHERE ${where.join(' AND ')} ORDER BY d.id DESC LIMIT ?`,
      [...params, limit],
    );
    return rows.map(toDelivery);
  }

  /** The delivery with this id if it belongs to this subscription. */
  async find(s: SqlSession, subscriptionId: string, deliveryId: string, lock = false): Promise<DeliveryRow | null> {
    const rows = await s.rows<Record<string, unknown>>(
      `SELECT ${COLUMNS} FROM ${FROM} WHERE d.id = ? AND d.subscription_id = ?${lock ? s.sql.forShare : ''}`,
      [deliveryId, subscriptionId],
    );
    return rows.length === 0 ? null : toDelivery(rows[0]);
  }

  /** The id of a pending delivery of this event to this subscription, if there is one. */
  async pendingOf(s: SqlSession, subscriptionId: string, eventRowId: string): Promise<string | null> {
    const rows = await s.rows<{ id: unknown }>(
      "SELECT id FROM webhook_deliveries WHERE subscription_id = ? AND event_id = ? AND status = 'pending' LIMIT 1",
      [subscriptionId, eventRowId],
    );
    return rows.length === 0 ? null : String(rows[0].id);
  }

  /** A new pending delivery of the event, due at `at`; returns its id. */
  async insertPending(s: SqlSession, subscriptionId: string, eventRowId: string, at: Date): Promise<string> {
    const now = sqlTimestamp(at);
    const result = await s.exec(
      `INSERT INTO webhook_deliveries (subscription_id, event_id, status, attempts, next_attempt_at, created_at, updated_at)
       VALUES (?, ?, 'pending', 0, ?, ?, ?)`,
      [subscriptionId, eventRowId, now, now, now],
    );
    if (result.insertId === null) throw new Error('webhook delivery insert returned no id');
    return result.insertId;
  }
}

function toDelivery(row: Record<string, unknown>): DeliveryRow {
  return {
    id: String(row.id),
    subscriptionId: String(row.subscription_id),
    eventRowId: String(row.event_id),
    eventUid: String(row.event_uid),
    eventType: row.event_type as EventType,
    status: row.status as DeliveryStatus,
    attempts: Number(row.attempts),
    lastStatusCode:
      row.last_status_code === null || row.last_status_code === undefined ? null : Number(row.last_status_code),
    lastError: (row.last_error as string | null) ?? null,
    nextAttemptAt: readNullableTimestamp(row.next_attempt_at),
    createdAt: readTimestamp(row.created_at),
    updatedAt: readTimestamp(row.updated_at),
    deliveredAt: readNullableTimestamp(row.delivered_at),
  };
}
