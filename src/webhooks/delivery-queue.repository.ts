import { Injectable } from '@nestjs/common';
import { marks } from '../database/dialect';
import { compactSql, readBoolean, readNullableTimestamp, sqlTimestamp, type SqlSession } from '../database/sql-session';
import type { SigningSecrets } from './signing';

/** A delivery a worker holds the lease of, with everything its attempt sends. */
export interface ClaimedDelivery {
  readonly id: string;
  /** This attempt's number (1 = the first). */
  readonly attempt: number;
  readonly eventUid: string;
  readonly body: string;
  readonly url: string;
  readonly secrets: SigningSecrets;
}

/** How an attempt ended, as stored. */
export type AttemptResult =
  | { readonly status: 'delivered'; readonly statusCode: number; readonly at: Date }
  | {
      readonly status: 'pending' | 'failed';
      readonly statusCode: number | null;
      readonly error: string;
      /** The next attempt; null when the delivery has failed for good. */
      readonly nextAttemptAt: Date | null;
      readonly at: Date;
    };

/** A pending delivery that may be claimed: due, its lease free or lapsed. */
const CLAIMABLE = `d.status = 'pending' AND d.next_attempt_at <= ? AND (d.claimed_until IS NULL OR d.claimed_until <= ?)`;

/**
 * The webhook delivery queue (webhook_deliveries) as the workers use it: find what is due, claim
 * it with a lease, and record each attempt's result under that lease.
 *
 * A claim locks only delivery rows (FOR UPDATE SKIP LOCKED: a worker passes over rows another one
 * is claiming), never subscription rows, which event producers share-lock in their own
 * transactions. The lease (claimed_until, claimed_by) is what keeps other workers away once the
 * claim has committed; a result is written only while claimed_by still holds this claim's token,
 * so a worker whose lease lapsed and was taken over cannot overwrite the newer attempt.
 */
@Injectable()
export class DeliveryQueueRepository {
  /** Ids of deliveries due by `now` to active subscriptions, oldest due first (a plain read, no lock). */
  async due(s: SqlSession, now: Date, limit: number): Promise<string[]> {
    const at = sqlTimestamp(now);
    const rows = await s.rows<{ id: unknown }>(
      compactSql(`
        SELECT d.id FROM webhook_deliveries d
          JOIN webhook_subscriptions sub ON sub.id = d.subscription_id
         WHERE ${CLAIMABLE} AND sub.is_active = 1
         ORDER BY d.next_attempt_at, d.id
         LIMIT ?`),
      [at, at, limit],
    );
    return rows.map((row) => String(row.id));
  }

  /**
   * Claims up to `limit` of `candidates` that are still claimable (in the caller's transaction):
   * counts the attempt and sets the lease. Deliveries whose subscription was deactivated
   * meanwhile are left alone.
   */
  async claim(
    s: SqlSession,
    candidates: readonly string[],
    limit: number,
    now: Date,
    leaseUntil: Date,
    token: string,
  ): Promise<ClaimedDelivery[]> {
    if (candidates.length === 0 || limit < 1) return [];
    const at = sqlTimestamp(now);
    const locked = await s.rows<{ id: unknown }>(
      compactSql(`
        SELECT d.id FROM webhook_deliveries d
         WHERE d.id IN (${marks(candidates.length)}) AND ${CLAIMABLE}
         ORDER BY d.next_attempt_at, d.id
         LIMIT ?${s.sql.forUpdateSkipLocked}`),
      [...candidates, at, at, limit],
    );
    if (locked.length === 0) return [];
    const ids = locked.map((row) => String(row.id));
    const rows = await s.rows<{
      id: unknown;
      attempts: unknown;
      uid: string;
      body: string;
      url: string;
      is_active: unknown;
      secret: string;
      previous_secret: string | null;
      previous_secret_expires_at: unknown;
    }>(
      compactSql(`
        SELECT d.id, d.attempts, e.uid, e.body, sub.url, sub.is_active, sub.secret, sub.previous_secret,
               sub.previous_secret_expires_at
          FROM webhook_deliveries d
          JOIN webhook_events e ON e.id = d.event_id
          JOIN webhook_subscriptions sub ON sub.id = d.subscription_id
         WHERE d.id IN (${marks(ids.length)})
         ORDER BY d.id`),
      ids,
    );
    const active = rows.filter((row) => readBoolean(row.is_active));
    if (active.length === 0) return [];
    await s.exec(
      `UPDATE webhook_deliveries SET attempts = attempts + 1, claimed_until = ?, claimed_by = ?, updated_at = ?
        WHERE id IN (${marks(active.length)})`,
      [sqlTimestamp(leaseUntil), token, at, ...active.map((row) => String(row.id))],
    );
    return active.map((row) => ({
      id: String(row.id),
      attempt: Number(row.attempts) + 1,
      eventUid: row.uid,
      body: row.body,
      url: row.url,
      secrets: {
        secret: row.secret,
        previousSecret: row.previous_secret,
        previousSecretExpiresAt: readNullableTimestamp(row.previous_secret_expires_at),
      },
    }));
  }

  /** Stores an attempt's result and ends the lease; false when the lease is no longer this claim's. */
  async recordResult(s: SqlSession, id: string, token: string, result: AttemptResult): Promise<boolean> {
    const at = sqlTimestamp(result.at);
    const written =
      result.status === 'delivered'
        ? await s.exec(
            `UPDATE webhook_deliveries
                SET status = 'delivered', last_status_code = ?, last_error = NULL, next_attempt_at = NULL,
                    claimed_until = NULL, claimed_by = NULL, delivered_at = ?, updated_at = ?
              WHERE id = ? AND claimed_by = ? AND status = 'pending'`,
            [result.statusCode, at, at, id, token],
          )
        : await s.exec(
            `UPDATE webhook_deliveries
                SET status = ?, last_status_code = ?, last_error = ?, next_attempt_at = ?,
                    claimed_until = NULL, claimed_by = NULL, updated_at = ?
              WHERE id = ? AND claimed_by = ? AND status = 'pending'`,
            [
              result.status,
              result.statusCode,
              result.error.slice(0, 200),
              result.nextAttemptAt === null ? null : sqlTimestamp(result.nextAttemptAt),
              at,
              id,
              token,
            ],
          );
    return written.affected === 1;
  }

  /** Deliveries not yet delivered or failed for good, over every subscription. */
  async pendingCount(s: SqlSession): Promise<number> {
    const rows = await s.rows<{ n: unknown }>("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = 'pending'");
    return Number(rows[0]?.n ?? 0);
  }
}
