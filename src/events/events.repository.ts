import { randomBytes } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { marks } from '../database/dialect';
import { sqlTimestamp, type SqlSession } from '../database/sql-session';
import { eventBody, type NewEvent } from './event-types';

/** A recorded event: its row id and the `webhook-id` its deliveries send. */
export interface RecordedEvent {
  readonly id: string;
  readonly uid: string;
  /** Deliveries created for it (one per active subscription to its type). */
  readonly deliveries: number;
}

/** Events (or deliveries) per multi-row statement of recordAll. */
const EVENTS_PER_STATEMENT = 500;

/** `msg_` and 18 random bytes in base64url: unique across databases, restores and instances. */
export function newEventUid(): string {
  return `msg_${randomBytes(18).toString('base64url')}`;
}

/** A subscription's `event_types` column as a list. */
export function parseEventTypes(stored: string): string[] {
  return stored === '' ? [] : stored.split(',');
}

/**
 * The event log (webhook_events) and its fan-out. An event is recorded in the transaction of the
 * change that caused it (or of the processor that detected it), together with one pending
 * delivery per active subscription to its type, so it commits or rolls back with its cause and
 * the delivery workers, outside any request, find it once it has committed.
 *
 * The active subscriptions are read with a shared lock: one deleted meanwhile is not seen (its
 * delivery's foreign key would fail the cause's transaction), and one being changed is waited for.
 * The deliveries are then inserted as VALUES, not INSERT ... SELECT, so no lock wait happens while
 * the deliveries table's AUTO-INC lock is held.
 */
@Injectable()
export class EventsRepository {
  /**
   * Records many events at once, as `record` does each (same fan-out, same transaction), in a few
   * statements per EVENTS_PER_STATEMENT events instead of three per event: a processor that finds
   * thousands in one run (a bulk adjustment taking every member of a type past 80 %) keeps its
   * transaction, and its shared lock on the subscriptions, short. Returns them in input order.
   */
  async recordAll(s: SqlSession, events: readonly NewEvent[]): Promise<RecordedEvent[]> {
    if (events.length === 0) return [];
    const subscriptions = await s.rows<{ id: unknown; event_types: string }>(
      `SELECT id, event_types FROM webhook_subscriptions WHERE is_active = 1 ORDER BY id${s.sql.forShare}`,
    );
    const targetsOf = new Map<string, string[]>();
    for (const type of new Set(events.map((e) => e.type))) {
      targetsOf.set(
        type,
        subscriptions.filter((row) => parseEventTypes(row.event_types).includes(type)).map((row) => String(row.id)),
      );
    }
    const recorded: RecordedEvent[] = [];
    for (let i = 0; i < events.length; i += EVENTS_PER_STATEMENT) {
      const chunk = events.slice(i, i + EVENTS_PER_STATEMENT).map((event) => ({
        event,
        uid: newEventUid(),
        at: sqlTimestamp(event.at),
        targets: targetsOf.get(event.type)!,
      }));
      await s.exec(
        `INSERT INTO webhook_events (uid, type, source, body, created_at) VALUES ${chunk.map(() => '(?, ?, ?, ?, ?)').join(', ')}`,
        chunk.flatMap((e) => [e.uid, e.event.type, e.event.source, eventBody(e.event), e.at]),
      );
      // The ids back by uid (unique): a multi-row insert reports one id on either driver.
      const rows = await s.rows<{ id: unknown; uid: string }>(
        `SELECT id, uid FROM webhook_events WHERE uid IN (${marks(chunk.length)})`,
        chunk.map((e) => e.uid),
      );
      const idOf = new Map(rows.map((r) => [r.uid, String(r.id)]));
      const deliveries = chunk.flatMap((e) =>
        e.targets.map((subscriptionId) => [subscriptionId, idOf.get(e.uid)!, 'pending', 0, e.at, e.at, e.at]),
      );
      for (let j = 0; j < deliveries.length; j += EVENTS_PER_STATEMENT) {
        const part = deliveries.slice(j, j + EVENTS_PER_STATEMENT);
        await s.exec(
          `INSERT INTO webhook_deliveries (subscription_id, event_id, status, attempts, next_attempt_at, created_at, updated_at)
           VALUES ${part.map(() => '(?, ?, ?, ?, ?, ?, ?)').join(', ')}`,
          part.flat(),
        );
      }
      recorded.push(...chunk.map((e) => ({ id: idOf.get(e.uid)!, uid: e.uid, deliveries: e.targets.length })));
    }
    return recorded;
  }

  /** One event, as recordAll records each. */
  async record(s: SqlSession, event: NewEvent): Promise<RecordedEvent> {
    const [recorded] = await this.recordAll(s, [event]);
    return recorded;
  }

  /**
   * An event meant for one subscription only (`webhook.test`), with its one pending delivery, due
   * at once, whatever types the subscription receives. The caller holds the subscription's row
   * lock, so it cannot be deleted meanwhile.
   */
  async recordFor(
    s: SqlSession,
    event: NewEvent,
    subscriptionId: string,
  ): Promise<RecordedEvent & { deliveryId: string }> {
    const { id, uid, at } = await this.insertEvent(s, event);
    const delivery = await s.exec(
      `INSERT INTO webhook_deliveries (subscription_id, event_id, status, attempts, next_attempt_at, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
      [subscriptionId, id, 'pending', 0, at, at, at],
    );
    if (delivery.insertId === null) throw new Error('delivery insert returned no id');
    return { id, uid, deliveries: 1, deliveryId: delivery.insertId };
  }

  /**
   * Ids of events recorded before `cutoff` that no delivery still waits to send, oldest first (a
   * range on idx_webhook_events_created_at): what the retention may delete.
   */
  async settledBefore(s: SqlSession, cutoff: Date, limit: number): Promise<string[]> {
    const rows = await s.rows<{ id: unknown }>(
      `SELECT e.id FROM webhook_events e
        WHERE e.created_at < ?
          AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.status = 'pending')
        ORDER BY e.created_at, e.id
        LIMIT ?`,
      [sqlTimestamp(cutoff), limit],
    );
    return rows.map((r) => String(r.id));
  }

  /**
   * Deletes these events with their delivery log, unless a delivery of one became pending again
   * since they were read (a redelivery): that event and its deliveries stay. Returns how many
   * events went.
   */
  async deleteSettled(s: SqlSession, ids: readonly string[]): Promise<number> {
    // The events first: a redelivery share-locks its event before it inserts, so it either came
    // before (its pending delivery is seen below) or waits and then finds the event gone.
    await s.rows(`SELECT id FROM webhook_events WHERE id IN (${marks(ids.length)})${s.sql.forUpdate}`, ids);
    const stillPending = await s.rows<{ event_id: unknown }>(
      `SELECT DISTINCT event_id FROM webhook_deliveries WHERE event_id IN (${marks(ids.length)}) AND status = 'pending'`,
      ids,
    );
    const keep = new Set(stillPending.map((r) => String(r.event_id)));
    const gone = ids.filter((id) => !keep.has(id));
    if (gone.length === 0) return 0;
    await s.exec(`DELETE FROM webhook_deliveries WHERE event_id IN (${marks(gone.length)})`, gone);
    const deleted = await s.exec(`DELETE FROM webhook_events WHERE id IN (${marks(gone.length)})`, gone);
    return deleted.affected;
  }

  private async insertEvent(s: SqlSession, event: NewEvent): Promise<{ id: string; uid: string; at: string }> {
    const uid = newEventUid();
    const at = sqlTimestamp(event.at);
    const inserted = await s.exec(
      'INSERT INTO webhook_events (uid, type, source, body, created_at) VALUES (?, ?, ?, ?, ?)',
      [uid, event.type, event.source, eventBody(event), at],
    );
    if (inserted.insertId === null) throw new Error('event insert returned no id');
    return { id: inserted.insertId, uid, at };
  }
}
