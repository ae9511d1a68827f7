import { createHash } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { Interval } from '@nestjs/schedule';
import type { Logger } from 'pino';
import { ROOT_LOGGER } from '../common/logger.token';
import { AppError } from '../common/app-error';
import { LedgerService, type LedgerChange, type LedgerEntry } from './ledger.service';
import { QuotaMetrics } from './quota.metrics';
import { QuotaDatabase } from '../database/database';
import {
  compactSql,
  dbErrorKind,
  readTimestamp,
  sqlTimestamp,
  type SqlSession,
  type Statement,
  type TransactionOptions,
} from '../database/sql-session';
import { IdempotencyKeyInUseError, IdempotencyKeyMismatchError } from './quota.errors';

export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
const PURGE_INTERVAL_MS = 10 * 60 * 1000;
const PURGE_BATCH = 1000;
const MAX_CLAIM_ATTEMPTS = 3;
/** Stamped with the database's clock (MySQL sessions run in UTC), like the rest of the batch. */
const CLAIM_AFTER_CHANGE_SQL = compactSql(
  `INSERT INTO idempotency_keys (key_hash, scope, request_hash, member_id, created_at, expires_at)
   SELECT ?, ?, ?, ?, NOW(3), NOW(3) + INTERVAL ${IDEMPOTENCY_TTL_MS / 1000} SECOND FROM DUAL WHERE ROW_COUNT() = 1`,
);
/** MariaDB: does not wait for a concurrent holder of the key (see claim()). */
const CLAIM_AFTER_CHANGE_NOWAIT_SQL = `SET STATEMENT innodb_lock_wait_timeout = 0 FOR ${CLAIM_AFTER_CHANGE_SQL}`;

export type IdempotentOperation = 'consume' | 'refund' | 'adjust';

export interface IdempotentRequest {
  /** The caller (user id): keys are scoped per caller. */
  readonly scope: string;
  readonly key: string;
  readonly operation: IdempotentOperation;
  readonly memberId: string;
  /** The validated body; absent fields and undefined are the same. */
  readonly body: Readonly<Record<string, unknown>>;
}

export interface IdempotentOutcome {
  readonly entry: LedgerEntry;
  readonly replayed: boolean;
}

class KeyAlreadyClaimed extends Error {}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function canonicalBody(body: Readonly<Record<string, unknown>>): [string, unknown][] {
  return Object.keys(body)
    .filter((k) => body[k] !== undefined)
    .sort()
    .map((k) => [k, body[k]]);
}

export function keyHash(scope: string, key: string): string {
  return sha256(`${scope}\n${key}`);
}

export function requestHash(request: Omit<IdempotentRequest, 'scope' | 'key'>): string {
  return sha256(JSON.stringify([request.operation, request.memberId, canonicalBody(request.body)]));
}

/**
 * Idempotency-Key handling for consume, refund and adjust. The key is claimed by inserting its row
 * in the same transaction as the balance change, so it exists exactly when the change committed
 * (a refused or failed request leaves no key behind and may be retried with it). A replay is
 * rebuilt from the history row the first request wrote, which is what the first answer said.
 *
 * On MariaDB the claim does not wait for a concurrent holder of the same key: it fails at once and
 * the caller gets 409 idempotency_key_in_use. Servers without `SET STATEMENT` (MySQL 8) wait for
 * the first request to finish and then replay its answer; SQLite runs one writer at a time.
 */
@Injectable()
export class IdempotencyService {
  private purging = false;

  constructor(
    private readonly db: QuotaDatabase,
    private readonly ledger: LedgerService,
    private readonly metrics: QuotaMetrics,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
  ) {}

  /**
   * One ledger change under an optional key. Where the database takes batches (MySQL) the claim
   * travels in the change's own one-round-trip transaction, after the history row and written
   * only with it, so a refused change leaves no key. A refusal is first checked against a
   * committed key: a replay answers what the first request was told, even if the same change
   * would now be refused.
   */
  async runChange(request: IdempotentRequest | null, change: LedgerChange): Promise<IdempotentOutcome> {
    if (!this.db.batches) return this.run(request, (s) => this.ledger.apply(s, change));
    if (!request) return { entry: await this.ledger.applyAlone(change), replayed: false };
    const hash = keyHash(request.scope, request.key);
    const reqHash = requestHash(request);
    const claim = this.claimAfterChange(request, hash, reqHash);
    for (let attempt = 1; ; attempt++) {
      try {
        // MariaDB's claim does not wait (see claim()): its lock wait time-out means "in flight".
        const entry = await this.ledger.applyAlone(change, claim, { retryLockTimeouts: !this.db.isMariaDb });
        return { entry, replayed: false };
      } catch (err) {
        const kind = dbErrorKind(err);
        if (kind === 'lock_timeout' && this.db.isMariaDb) throw new IdempotencyKeyInUseError();
        if (kind !== 'duplicate') {
          if (!(err instanceof AppError)) throw err;
          const replay = await this.replay(request, hash, reqHash);
          if (replay) return { entry: replay, replayed: true };
          throw err;
        }
      }
      const replay = await this.replay(request, hash, reqHash);
      if (replay) return { entry: replay, replayed: true };
      if (attempt >= MAX_CLAIM_ATTEMPTS) throw new IdempotencyKeyInUseError();
    }
  }

  async run(
    request: IdempotentRequest | null,
    work: (s: SqlSession) => Promise<LedgerEntry>,
    options: TransactionOptions = {},
  ): Promise<IdempotentOutcome> {
    if (!request) return { entry: await this.db.transaction(work, options), replayed: false };
    const claim = {
      keyHash: keyHash(request.scope, request.key),
      requestHash: requestHash(request),
    };
    for (let attempt = 1; ; attempt++) {
      try {
        const entry = await this.db.transaction(async (s) => {
          await this.claim(s, request, claim.keyHash, claim.requestHash);
          return work(s);
        }, options);
        return { entry, replayed: false };
      } catch (err) {
        if (!(err instanceof KeyAlreadyClaimed)) throw err;
      }
      const replay = await this.replay(request, claim.keyHash, claim.requestHash);
      if (replay) return { entry: replay, replayed: true };
      if (attempt >= MAX_CLAIM_ATTEMPTS) throw new IdempotencyKeyInUseError();
    }
  }

  /** Deletes expired keys in small batches; returns how many went. */
  async purgeExpired(now = new Date()): Promise<number> {
    const cutoff = sqlTimestamp(now);
    let purged = 0;
    for (;;) {
      // Select first, then delete by primary key: the DELETE locks only those rows, never a gap
      // that a new key's insert would wait for.
      const hashes = await this.db.read((s) =>
        s.rows<{ key_hash: string }>(
          'SELECT key_hash FROM idempotency_keys WHERE expires_at <= ? ORDER BY expires_at LIMIT ?',
          [cutoff, PURGE_BATCH],
        ),
      );
      if (hashes.length === 0) break;
      const deleted = await this.db.transaction((s) =>
        s.exec(
          `DELETE FROM idempotency_keys WHERE key_hash IN (${hashes.map(() => '?').join(', ')}) AND expires_at <= ?`,
          [...hashes.map((h) => h.key_hash), cutoff],
        ),
      );
      purged += deleted.affected;
      if (hashes.length < PURGE_BATCH) break;
    }
    if (purged > 0) this.metrics.idempotencyKeysPurged.inc(purged);
    return purged;
  }

  /** Every 10 minutes on every instance (Nest's scheduler stops it at shutdown); runs never overlap. */
  @Interval('idempotency-purge', PURGE_INTERVAL_MS)
  async purgeOnSchedule(): Promise<void> {
    if (this.purging) return;
    this.purging = true;
    try {
      const purged = await this.purgeExpired();
      if (purged > 0) this.logger.info({ purged }, 'expired idempotency keys deleted');
    } catch (err) {
      this.logger.warn({ err }, 'purging expired idempotency keys failed');
    } finally {
      this.purging = false;
    }
  }

  private async claim(s: SqlSession, request: IdempotentRequest, hash: string, reqHash: string): Promise<void> {
    const now = new Date();
    const insert =
      'INSERT INTO idempotency_keys (key_hash, scope, request_hash, member_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)';
    try {
      await s.exec(s.isMariaDb ? `SET STATEMENT innodb_lock_wait_timeout = 0 FOR ${insert}` : insert, [
        hash,
        request.scope,
        reqHash,
        request.memberId,
        sqlTimestamp(now),
        sqlTimestamp(new Date(now.getTime() + IDEMPOTENCY_TTL_MS)),
      ]);
    } catch (err) {
      const kind = dbErrorKind(err);
      if (kind === 'duplicate') throw new KeyAlreadyClaimed();
      // Only a concurrent, uncommitted claim of the same key makes this insert wait.
      if (kind === 'lock_timeout' && s.isMariaDb) throw new IdempotencyKeyInUseError();
      throw err;
    }
  }

  /** claim() as the statement that follows a ledger change in its batch (LedgerService.applyAlone). */
  private claimAfterChange(request: IdempotentRequest, hash: string, reqHash: string): Statement {
    return {
      sql: this.db.isMariaDb ? CLAIM_AFTER_CHANGE_NOWAIT_SQL : CLAIM_AFTER_CHANGE_SQL,
      params: [hash, request.scope, reqHash, request.memberId],
    };
  }

  /** The first answer for a committed key; null when the key has expired (it is then removed). */
  private async replay(request: IdempotentRequest, hash: string, reqHash: string): Promise<LedgerEntry | null> {
    const now = new Date();
    const keys = await this.db.read((s) =>
      s.rows<{ request_hash: string; member_id: unknown; expires_at: unknown }>(
        'SELECT request_hash, member_id, expires_at FROM idempotency_keys WHERE key_hash = ?',
        [hash],
      ),
    );
    if (keys.length === 0) return null;
    if (readTimestamp(keys[0].expires_at) <= now) {
      await this.db.transaction((s) =>
        s.exec('DELETE FROM idempotency_keys WHERE key_hash = ? AND expires_at <= ?', [hash, sqlTimestamp(now)]),
      );
      return null;
    }
    if (keys[0].request_hash !== reqHash) throw new IdempotencyKeyMismatchError();
    const rows = await this.db.read((s) =>
      s.rows<{
        id: unknown;
        member_id: unknown;
        delta: number;
        balance_after: number;
        reason: string;
        idempotency_key: string;
        config_id: unknown;
      }>(
        `SELECT h.id, h.member_id, h.delta, h.balance_after, h.reason, h.idempotency_key, c.id AS config_id
           FROM member_quota_history h
           JOIN members m ON m.id = h.member_id
           JOIN member_quota_config c ON c.membership_type = m.membership_type
          WHERE h.member_id = ? AND h.idempotency_key = ? AND h.actor = ?
          ORDER BY h.id DESC`,
        [String(keys[0].member_id), request.key, request.scope],
      ),
    );
    // Keys are exact bytes (the claim is their SHA-256); MySQL's default collation would also
    // match "Key-1" to "key-1" here, so the stored key is compared once more, exactly.
    const row = rows.find((r) => r.idempotency_key === request.key);
    if (!row) throw new Error('an idempotency key has no history row');
    return {
      historyId: String(row.id),
      memberId: String(row.member_id),
      delta: Number(row.delta),
      balanceAfter: Number(row.balance_after),
      reason: row.reason as LedgerEntry['reason'],
      configId: String(row.config_id),
    };
  }
}
