import { Injectable } from '@nestjs/common';
import { parseEventTypes } from '../events/events.repository';
import type { EventType } from '../events/event-types';
import {
  readBoolean,
  readNullableTimestamp,
  readTimestamp,
  sqlTimestamp,
  type SqlSession,
} from '../database/sql-session';

/** A subscription as stored, without its secrets (those are read only by secretsOf). */
export interface SubscriptionRow {
  readonly id: string;
  readonly url: string;
  readonly description: string | null;
  readonly isActive: boolean;
  readonly eventTypes: EventType[];
  readonly previousSecretExpiresAt: Date | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface NewSubscription {
  readonly url: string;
  readonly description: string | null;
  readonly isActive: boolean;
  readonly eventTypes: readonly EventType[];
  readonly secret: string;
  readonly createdBy: string;
  readonly at: Date;
}

/** The columns to set; absent fields stay as they are. */
export interface SubscriptionColumns {
  readonly url?: string;
  readonly description?: string | null;
  readonly isActive?: boolean;
  readonly eventTypes?: readonly EventType[];
}

const COLUMNS = 'id, url, description, is_active, event_types, previous_secret_expires_at, created_at, updated_at';

/** The webhook_subscriptions table. */
@Injectable()
export class SubscriptionsRepository {
  /** Newest first, keyset-paginated on the id. */
  async newestFirst(s: SqlSession, beforeId: string | undefined, limit: number): Promise<SubscriptionRow[]> {
    const rows =
      beforeId === undefined
        ? await s.rows<Record<string, unknown>>(
            `SELECT ${COLUMNS} FROM webhook_subscriptions ORDER BY id DESC LIMIT ?`,
            [limit],
          )
        : await s.rows<Record<string, unknown>>(
            `SELECT ${COLUMNS} FROM webhook_subscriptions WHERE id < ? ORDER BY id DESC LIMIT ?`,
            [beforeId, limit],
          );
    return rows.map(toSubscription);
  }

  /** The subscription with this id; `lock` write-locks its row. */
  async find(s: SqlSession, id: string, lock = false): Promise<SubscriptionRow | null> {
    const rows = await s.rows<Record<string, unknown>>(
      `SELECT ${COLUMNS} FROM webhook_subscriptions WHERE id = ?${lock ? s.sql.forUpdate : ''}`,
      [id],
    );
    return rows.length === 0 ? null : toSubscription(rows[0]);
  }

  /** The current secret of a subscription, its row write-locked (a rotation reads it to keep it as the previous one). */
  async lockedSecret(s: SqlSession, id: string): Promise<string | null> {
    const rows = await s.rows<{ secret: string }>(
      `SELECT secret FROM webhook_subscriptions WHERE id = ?${s.sql.forUpdate}`,
      [id],
    );
    return rows.length === 0 ? null : rows[0].secret;
  }

  async insert(s: SqlSession, subscription: NewSubscription): Promise<string> {
    const at = sqlTimestamp(subscription.at);
    const result = await s.exec(
      `INSERT INTO webhook_subscriptions (url, description, is_active, event_types, secret, created_by, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      [
        subscription.url,
        subscription.description,
        subscription.isActive ? 1 : 0,
        subscription.eventTypes.join(','),
        subscription.secret,
        subscription.createdBy,
        at,
        at,
      ],
    );
    if (result.insertId === null) throw new Error('webhook subscription insert returned no id');
    return result.insertId;
  }

  /** Sets the given columns and updated_at. */
  async update(s: SqlSession, id: string, columns: SubscriptionColumns, at: Date): Promise<void> {
    const sets: string[] = [];
    const params: unknown[] = [];
    const set = (column: string, value: unknown) => {
      sets.push(`${column} = ?`);
      params.push(value);
    };
    if (columns.url !== undefined) set('url', columns.url);
    if (columns.description !== undefined) set('description', columns.description);
    if (columns.isActive !== undefined) set('is_active', columns.isActive ? 1 : 0);
    if (columns.eventTypes !== undefined) set('event_types', columns.eventTypes.join(','));
    set('updated_at', sqlTimestamp(at));
    await s.exec(`UPDATE webhook_subscriptions SET ${sets.join(', ')} WHERE id = ?`, [...params, id]);
  }

  /** A new current secret; the one it replaces signs too until `previousExpiresAt`. */
  async rotateSecret(
    s: SqlSession,
    id: string,
    rotation: { secret: string; previousSecret: string; previousExpiresAt: Date; at: Date },
  ): Promise<void> {
    await s.exec(
      `UPDATE webhook_subscriptions
          SET secret = ?, previous_secret = ?, previous_secret_expires_at = ?, updated_at = ?
        WHERE id = ?`,
      [
        rotation.secret,
        rotation.previousSecret,
        sqlTimestamp(rotation.previousExpiresAt),
        sqlTimestamp(rotation.at),
        id,
      ],
    );
  }

  /** Deletes the subscription; its deliveries go with it (foreign key ON DELETE CASCADE). */
  async delete(s: SqlSession, id: string): Promise<void> {
    await s.exec('DELETE FROM webhook_subscriptions WHERE id = ?', [id]);
  }
}

function toSubscription(row: Record<string, unknown>): SubscriptionRow {
  return {
    id: String(row.id),
    url: String(row.url),
    description: (row.description as string | null) ?? null,
    isActive: readBoolean(row.is_active),
    eventTypes: parseEventTypes(String(row.event_types)) as EventType[],
    previousSecretExpiresAt: readNullableTimestamp(row.previous_secret_expires_at),
    createdAt: readTimestamp(row.created_at),
    updatedAt: readTimestamp(row.updated_at),
  };
}
