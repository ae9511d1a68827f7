import { Injectable } from '@nestjs/common';
import { compactSql, readTimestamp, sqlTimestamp, type SqlSession, type Statement } from '../database/sql-session';
import type { LedgerEntry } from './ledger.service';

export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;

/** Stamped with the database's clock (MySQL sessions run in UTC), like the rest of the batch. */
const CLAIM_AFTER_CHANGE_SQL = compactSql(
  `INSERT INTO idempotency_keys (key_hash, scope, request_hash, member_id, created_at, expires_at)
   SELECT ?, ?, ?, ?, NOW(3), NOW(3) + INTERVAL ${IDEMPOTENCY_TTL_MS / 1000} SECOND FROM DUAL WHERE ROW_COUNT() = 1`,
);
/** MariaDB: does not wait for a concurrent holder of the key. */
const CLAIM_AFTER_CHANGE_NOWAIT_SQL = `SET STATEMENT innodb_lock_wait_timeout = 0 FOR ${CLAIM_AFTER_CHANGE_SQL}`;

const CLAIM_SQL =
  'INSERT INTO idempotency_keys (key_hash, scope, request_hash, member_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)';
const CLAIM_NOWAIT_SQL = `SET STATEMENT innodb_lock_wait_timeout = 0 FOR ${CLAIM_SQL}`;

/** A key to claim: its hash (scope and key), the hash of the request it answers, and the member. */
export interface KeyClaim {
  readonly keyHash: string;
  readonly scope: string;
  readonly requestHash: string;
  readonly memberId: string;
}

/** A committed key as stored. */
export interface StoredKey {
  readonly requestHash: string;
  readonly memberId: string;
  readonly expiresAt: Date;
}

/** A history row written under an idempotency key, with the key exactly as stored. */
export interface KeyedHistoryRow {
  readonly entry: LedgerEntry;
  readonly idempotencyKey: string;
}

/**
 * The idempotency_keys table: claims (inside the balance change's transaction, or as the statement
 * that follows it in the change's batch), the committed key and the history rows it answers
 * with, and the purge of expired keys.
 */
@Injectable()
export class IdempotencyRepository {
  /**
   * Inserts the key's row; a duplicate key error means it is claimed already. On MariaDB the
   * insert does not wait for a concurrent, uncommitted claim of the same key (it fails at once
   * with a lock wait time-out).
   */
  async insertClaim(s: SqlSession, claim: KeyClaim, now: Date): Promise<void> {
    await s.exec(s.boundsStatementLockWait ? CLAIM_NOWAIT_SQL : CLAIM_SQL, [
      claim.keyHash,
      claim.scope,
      claim.requestHash,
      claim.memberId,
      sqlTimestamp(now),
      sqlTimestamp(new Date(now.getTime() + IDEMPOTENCY_TTL_MS)),
    ]);
  }

  /**
   * insertClaim() as the statement that follows a ledger change in its batch: written only when
   * the statement before it wrote its row (`ROW_COUNT() = 1`). `noWait` as for insertClaim.
   */
  claimAfterChangeStatement(claim: KeyClaim, noWait: boolean): Statement {
    return {
      sql: noWait ? CLAIM_AFTER_CHANGE_NOWAIT_SQL : CLAIM_AFTER_CHANGE_SQL,
      params: [claim.keyHash, claim.scope, claim.requestHash, claim.memberId],
    };
  }

  async findKey(s: SqlSession, keyHash: string): Promise<StoredKey | null> {
    const rows = await s.rows<{ request_hash: string; member_id: unknown; expires_at: unknown }>(
      'SELECT request_hash, member_id, expires_at FROM idempotency_keys WHERE key_hash = ?',
      [keyHash],
    );
    if (rows.length === 0) return null;
    return {
      requestHash: rows[0].request_hash,
      memberId: String(rows[0].member_id),
      expiresAt: readTimestamp(rows[0].expires_at),
    };
  }

  /** Deletes the key if it has expired by `now`; returns whether it went. */
  async deleteKeyIfExpired(s: SqlSession, keyHash: string, now: Date): Promise<boolean> {
    const result = await s.exec('DELETE FROM idempotency_keys WHERE key_hash = ? AND expires_at <= ?', [
      keyHash,
      sqlTimestamp(now),
    ]);
    return result.affected > 0;
  }

  /**
   * The member's history rows written by `actor` under `key`, newest first. MySQL's default
   * collation matches keys case-insensitively here; the caller compares `idempotencyKey` exactly.
   */
  async historyRowsUnderKey(s: SqlSession, memberId: string, key: string, actor: string): Promise<KeyedHistoryRow[]> {
    const rows = await s.rows<{
      id: unknown;
      member_id: unknown;
      delta: number;
      balance_after: number;
      reason: string;
      idempotency_key: string;
      config_id: unknown;
      hold_id: string | number | null;
    }>(
      `SELECT h.id, h.member_id, h.delta, h.balance_after, h.reason, h.idempotency_key, c.id AS config_id, h.hold_id
         FROM member_quota_history h
         JOIN members m ON m.id = h.member_id
         JOIN member_quota_config c ON c.membership_type = m.membership_type
        WHERE h.member_id = ? AND h.idempotency_key = ? AND h.actor = ?
        ORDER BY h.id DESC`,
      [memberId, key, actor],
    );
    return rows.map((row) => ({
      idempotencyKey: row.idempotency_key,
      entry: {
        historyId: String(row.id),
        memberId: String(row.member_id),
        delta: Number(row.delta),
        balanceAfter: Number(row.balance_after),
        reason: row.reason as LedgerEntry['reason'],
        configId: String(row.config_id),
        ...(row.hold_id === null ? {} : { holdId: String(row.hold_id) }),
      },
    }));
  }

  /** Up to `limit` hashes of keys expired by `cutoff`, oldest first. */
  async expiredKeyHashes(s: SqlSession, cutoff: Date, limit: number): Promise<string[]> {
    const rows = await s.rows<{ key_hash: string }>(
      'SELECT key_hash FROM idempotency_keys WHERE expires_at <= ? ORDER BY expires_at LIMIT ?',
      [sqlTimestamp(cutoff), limit],
    );
    return rows.map((r) => r.key_hash);
  }

  /**
   * Deletes the listed keys that are still expired by `cutoff`, by primary key (the DELETE locks
   * only those rows, never a gap a new key's insert would wait for); returns how many went.
   */
  async deleteExpiredKeys(s: SqlSession, keyHashes: readonly string[], cutoff: Date): Promise<number> {
    const result = await s.exec(
      `DELETE FROM idempotency_keys WHERE key_hash IN (${keyHashes.map(() => '?').join(', ')}) AND expires_at <= ?`,
      [...keyHashes, sqlTimestamp(cutoff)],
    );
    return result.affected;
  }
}
