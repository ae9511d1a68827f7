import { createHash } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { Interval } from '@nestjs/schedule';
import type { Logger } from 'pino';
import { ROOT_LOGGER } from '../common/logger.token';
import { AppError } from '../common/app-error';
import { LedgerService, type LedgerChange, type LedgerEntry } from './ledger.service';
import { QuotaMetrics } from './quota.metrics';
import { QuotaDatabase } from '../database/database';
import { WriteFreeze } from '../maintenance/write-freeze';
import { dbErrorKind, type SqlSession, type Statement, type TransactionOptions } from '../database/sql-session';
import { IDEMPOTENCY_TTL_MS, IdempotencyRepository, type KeyClaim } from './idempotency.repository';
import { IdempotencyKeyInUseError, IdempotencyKeyMismatchError } from './quota.errors';

export { IDEMPOTENCY_TTL_MS };
const PURGE_INTERVAL_MS = 10 * 60 * 1000;
const PURGE_BATCH = 1000;
const MAX_CLAIM_ATTEMPTS = 3;

export type IdempotentOperation = 'consume' | 'refund' | 'adjust' | 'hold' | 'hold_commit' | 'hold_release';

export interface IdempotentRequest {
  /** The caller (user id): keys are scoped per caller. */
  readonly scope: string;
  readonly key: string;
  readonly operation: IdempotentOperation;
  readonly memberId: string;
  /** The validated body; absent fields and undefined are the same. */
  readonly body: Readonly<Record<string, unknown>>;
}

/**
 * The hold row a change makes (a new hold): as the statement that follows the change's update in
 * its batch, and as an insert in a session (SQLite), returning the row's id.
 */
export interface NewHoldRow {
  readonly statement: Statement;
  insert(s: SqlSession): Promise<string>;
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
 * Idempotency-Key handling for consume, refund, adjust and holds (made, committed, released). The key is claimed by inserting its row
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
    private readonly keys: IdempotencyRepository,
    private readonly ledger: LedgerService,
    private readonly metrics: QuotaMetrics,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
    private readonly freeze: WriteFreeze,
  ) {}

  /**
   * One ledger change under an optional key. Where the database takes batches (MySQL) the claim
   * travels in the change's own one-round-trip transaction, after the history row and written
   * only with it, so a refused change leaves no key. A refusal is first checked against a
   * committed key: a replay answers what the first request was told, even if the same change
   * would now be refused.
   */
  async runChange(
    request: IdempotentRequest | null,
    change: LedgerChange,
    newHold?: NewHoldRow,
  ): Promise<IdempotentOutcome> {
    if (!this.db.batches)
      return this.run(request, (s) => this.ledger.apply(s, change, newHold && (() => newHold.insert(s))));
    const holdInsert = newHold?.statement;
    if (!request) return { entry: await this.ledger.applyAlone(change, undefined, { holdInsert }), replayed: false };
    const hash = keyHash(request.scope, request.key);
    const reqHash = requestHash(request);
    // MariaDB's claim does not wait for a concurrent holder of the key (see the class comment).
    const claim = this.keys.claimAfterChangeStatement(
      keyClaim(request, hash, reqHash),
      this.db.boundsStatementLockWait,
    );
    for (let attempt = 1; ; attempt++) {
      try {
        // MariaDB's claim does not wait (see claim()): its lock wait time-out means "in flight".
        const entry = await this.ledger.applyAlone(change, claim, {
          retryLockTimeouts: !this.db.boundsStatementLockWait,
          holdInsert,
        });
        return { entry, replayed: false };
      } catch (err) {
        const kind = dbErrorKind(err);
        if (kind === 'lock_timeout' && this.db.boundsStatementLockWait) throw new IdempotencyKeyInUseError();
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
    const { value, replayed } = await this.runKeyed(request, work, (rows) => Promise.resolve(rows[0]), options);
    return { entry: value, replayed };
  }

  /**
   * `work` in a transaction that claims the key first. When the key was claimed by an earlier
   * request with the same body, nothing runs and `rebuild` makes the first answer from the
   * history rows that request wrote under the key (newest first, at least one).
   */
  async runKeyed<T>(
    request: IdempotentRequest | null,
    work: (s: SqlSession) => Promise<T>,
    rebuild: (rows: readonly LedgerEntry[]) => Promise<T>,
    options: TransactionOptions = {},
  ): Promise<{ value: T; replayed: boolean }> {
    if (!request) return { value: await this.db.transaction(work, options), replayed: false };
    const claim = {
      keyHash: keyHash(request.scope, request.key),
      requestHash: requestHash(request),
    };
    for (let attempt = 1; ; attempt++) {
      try {
        const value = await this.db.transaction(async (s) => {
          await this.claim(s, request, claim.keyHash, claim.requestHash);
          return work(s);
        }, options);
        return { value, replayed: false };
      } catch (err) {
        if (!(err instanceof KeyAlreadyClaimed)) throw err;
      }
      const rows = await this.replayRows(request, claim.keyHash, claim.requestHash);
      if (rows) return { value: await rebuild(rows), replayed: true };
      if (attempt >= MAX_CLAIM_ATTEMPTS) throw new IdempotencyKeyInUseError();
    }
  }

  /** Deletes expired keys in small batches; returns how many went. */
  async purgeExpired(now = new Date()): Promise<number> {
    let purged = 0;
    for (;;) {
      // Select first, then delete by primary key (see IdempotencyRepository.deleteExpiredKeys).
      const hashes = await this.db.read((s) => this.keys.expiredKeyHashes(s, now, PURGE_BATCH));
      if (hashes.length === 0) break;
      purged += await this.db.transaction((s) => this.keys.deleteExpiredKeys(s, hashes, now));
      if (hashes.length < PURGE_BATCH) break;
    }
    if (purged > 0) this.metrics.idempotencyKeysPurged.inc(purged);
    return purged;
  }

  /** Every 10 minutes on every instance (Nest's scheduler stops it at shutdown); runs never overlap. */
  @Interval('idempotency-purge', PURGE_INTERVAL_MS)
  async purgeOnSchedule(): Promise<void> {
    // Paused during a write freeze; expired keys wait for the first run after it.
    if (this.purging || this.freeze.isReadOnly()) return;
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
    try {
      await this.keys.insertClaim(s, keyClaim(request, hash, reqHash), new Date());
    } catch (err) {
      const kind = dbErrorKind(err);
      if (kind === 'duplicate') throw new KeyAlreadyClaimed();
      // Only a concurrent, uncommitted claim of the same key makes this insert wait.
      if (kind === 'lock_timeout' && s.boundsStatementLockWait) throw new IdempotencyKeyInUseError();
      throw err;
    }
  }

  /** The first answer for a committed key; null when the key has expired (it is then removed). */
  private async replay(request: IdempotentRequest, hash: string, reqHash: string): Promise<LedgerEntry | null> {
    const rows = await this.replayRows(request, hash, reqHash);
    return rows ? rows[0] : null;
  }

  /** The history rows a committed key's request wrote, newest first; null when the key has expired (it is then removed). */
  private async replayRows(request: IdempotentRequest, hash: string, reqHash: string): Promise<LedgerEntry[] | null> {
    const now = new Date();
    const stored = await this.db.read((s) => this.keys.findKey(s, hash));
    if (!stored) return null;
    if (stored.expiresAt <= now) {
      await this.db.transaction((s) => this.keys.deleteKeyIfExpired(s, hash, now));
      return null;
    }
    if (stored.requestHash !== reqHash) throw new IdempotencyKeyMismatchError();
    const rows = await this.db.read((s) =>
      this.keys.historyRowsUnderKey(s, stored.memberId, request.key, request.scope),
    );
    // Keys are exact bytes (the claim is their SHA-256); MySQL's default collation would also
    // match "Key-1" to "key-1" here, so the stored key is compared once more, exactly.
    const matching = rows.filter((r) => r.idempotencyKey === request.key).map((r) => r.entry);
    if (matching.length === 0) throw new Error('an idempotency key has no history row');
    return matching;
  }
}

function keyClaim(request: IdempotentRequest, hash: string, reqHash: string): KeyClaim {
  return { keyHash: hash, scope: request.scope, requestHash: reqHash, memberId: request.memberId };
}
