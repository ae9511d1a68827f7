import { Injectable } from '@nestjs/common';
import type { HistoryReason } from './entities/quota-history.entity';
import { MAX_BALANCE } from './ledger.service';
import { QuotaMetrics } from './quota.metrics';
import { type SqlSession } from '../database/sql-session';
import { LedgerBulkRepository } from './ledger-bulk.repository';
import { OperationRecordsRepository } from './operation-records.repository';

export type BulkMode = 'delta' | 'set';
export type OperationKind = 'bulk_adjust' | 'config_propagation' | 'periodic_reset';

/** Which members an operation touches: a stored id list (quota_operation_members) or a whole type. */
export type BulkSelection =
  { readonly kind: 'member_ids' } | { readonly kind: 'membership_type'; readonly membershipType: string };

export interface BulkChunk {
  readonly operationId: string;
  readonly selection: BulkSelection;
  /** Members with ids above this one (where the chunk's range starts) are next. */
  readonly afterId: string;
  /** The chunk's range ends with this member id (inclusive); null or absent: no upper bound. */
  readonly upToId?: string | null;
  readonly limit: number;
  readonly mode: BulkMode;
  readonly value: number;
  readonly reason: HistoryReason;
  readonly actor: string;
  readonly note: string | null;
  /** Periodic resets start the members' new period. */
  readonly periodStartedAt?: Date | null;
  /**
   * A `set` that leaves the units of open holds out of the new balance (`value - quota_held`,
   * floored at 0): periodic resets and a config change applied as `reset`, so a member can spend
   * `max_quota` in all, held units included. An explicit new_quota sets the balance as asked.
   */
  readonly keepsHeld?: boolean;
}

/** An operation's members: its selection (a stored list is read under the operation's id). */
export type BulkTarget = Pick<BulkChunk, 'operationId' | 'selection'>;

export interface BulkChunkResult {
  /** Members in the chunk (0: the selection is exhausted). */
  readonly processed: number;
  /** History rows written now (members already done by an earlier attempt are skipped). */
  readonly written: number;
  /** Of those, rows whose delta is not 0. */
  readonly changed: number;
  /** The last member id of the chunk: the next cursor. */
  readonly lastMemberId: string | null;
}

/** A new balance, floored at 0 and capped at 2^31-1 (the same rule as LedgerService's). */
function clampBalance(value: number): number {
  return Math.min(MAX_BALANCE, Math.max(0, value));
}

/**
 * The set-based side of the ledger, for background operations: a chunk of members changes in one
 * transaction. Its member rows are locked in id order; then, 1,000 members at a time, one
 * statement writes their history rows and one sets their balances, both by primary key
 * (LedgerBulkRepository, which also says why no statement can stall other writers).
 *
 * The unique key on (operation_id, member_id) and the read of the members this operation already
 * did make a re-run of a chunk (crash, stalled job, retry) skip them.
 */
@Injectable()
export class LedgerBulkService {
  constructor(
    private readonly bulk: LedgerBulkRepository,
    private readonly metrics: QuotaMetrics,
  ) {}

  /** Runs inside the caller's transaction. */
  async applyChunk(s: SqlSession, chunk: BulkChunk): Promise<BulkChunkResult> {
    const locked = await this.bulk.lockChunkMembers(s, chunk);
    if (locked.length === 0) return { processed: 0, written: 0, changed: 0, lastMemberId: null };
    const last = locked[locked.length - 1].id;

    // Written by an earlier attempt of this chunk.
    const skip = await this.bulk.membersDone(s, chunk.operationId, chunk.afterId, last);
    const changes = locked
      .filter((m) => !skip.has(m.id))
      .map((m) => {
        const target = chunk.mode === 'delta' ? m.balance + chunk.value : chunk.value - (chunk.keepsHeld ? m.held : 0);
        const after = clampBalance(target);
        return { id: m.id, delta: after - m.balance, after };
      });

    // The database computes the new balances from the locked rows with the same floor and cap.
    const value = chunk.mode === 'delta' ? chunk.value : clampBalance(chunk.value);
    await this.bulk.writeChunk(
      s,
      { ...chunk, value },
      changes.map((c) => c.id),
    );

    const changed = changes.filter((c) => c.delta !== 0).length;
    if (changes.length > 0) this.metrics.ledgerChanges.inc({ reason: chunk.reason }, changes.length);
    return { processed: locked.length, written: changes.length, changed, lastMemberId: last };
  }

  /** Whether the operation's selection has members in (afterId, upToId] (upToId null: no upper bound). */
  hasMembersIn(s: SqlSession, target: BulkTarget, afterId: string, upToId: string | null): Promise<boolean> {
    return this.bulk.hasMembersIn(s, target, afterId, upToId);
  }

  /** The id that ends a range of `span` members of the selection after `afterId`; null when fewer are left. */
  rangeEnd(s: SqlSession, target: BulkTarget, afterId: string, span: number): Promise<string | null> {
    return this.bulk.rangeEnd(s, target, afterId, span);
  }
}

export interface NewOperation {
  readonly kind: OperationKind;
  readonly selection: BulkSelection;
  readonly mode: BulkMode;
  readonly value: number;
  readonly reason: HistoryReason;
  readonly note: string | null;
  readonly payload: Readonly<Record<string, unknown>>;
  readonly requestedBy: string;
  /** For member_ids the caller stores the list and passes its size; for a type it is counted here. */
  readonly total?: number;
  readonly dedupeKey?: string | null;
  readonly requestHash?: string | null;
  readonly configId?: string | null;
  readonly periodKey?: string | null;
  readonly periodStartedAt?: Date | null;
}

type AnnounceListener = (operationId: string) => void;

/**
 * Records background operations (the row that makes them durable) inside the caller's
 * transaction, and tells the queue about them once committed. It lives beside the ledger so the
 * quota module (config propagation) can start an operation without depending on the jobs module,
 * which subscribes with onAnnounce; an operation nobody announced is still found by the jobs
 * module's periodic sweep.
 */
@Injectable()
export class OperationRecorder {
  private readonly listeners: AnnounceListener[] = [];

  constructor(private readonly records: OperationRecordsRepository) {}

  async record(s: SqlSession, op: NewOperation): Promise<string> {
    let total = op.total ?? 0;
    if (op.selection.kind === 'membership_type' && op.total === undefined) {
      total = await this.records.countMembersOfType(s, op.selection.membershipType);
    }
    return this.records.insertQueued(s, op, total);
  }

  /** Call after the recording transaction committed. */
  announce(operationId: string): void {
    for (const listener of this.listeners) listener(operationId);
  }

  onAnnounce(listener: AnnounceListener): void {
    this.listeners.push(listener);
  }
}
