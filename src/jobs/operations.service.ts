import { createHash } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { AuditService } from '../audit/audit.service';
import type { Principal } from '../auth/principal';
import { AppError, NotFoundError, ValidationFailedError, type FieldError } from '../common/app-error';
import { IDEMPOTENCY_TTL_MS, keyHash } from '../quota/idempotency.service';
import { OperationRecorder, type BulkMode, type OperationKind } from '../quota/ledger-bulk.service';
import { MAX_BALANCE } from '../quota/ledger.service';
import { QuotaDatabase } from '../database/database';
import { dbErrorKind, readTimestamp, type SqlSession } from '../database/sql-session';
import {
  IdempotencyKeyInUseError,
  IdempotencyKeyMismatchError,
  UnknownMembershipTypeError,
} from '../quota/quota.errors';
import type { BulkReason } from './dto/operations.dto';
import type { Operation, OperationStatus } from './operation.view';
import { OperationsRepository } from './operations.repository';

export interface BulkAdjustInput {
  readonly memberIds?: readonly (number | string)[];
  readonly membershipType?: string;
  readonly newQuota?: number;
  readonly delta?: number;
  readonly reason?: BulkReason;
  readonly note?: string;
  readonly dryRun?: boolean;
}

export interface BulkAccepted {
  readonly operationId: string;
  readonly total: number;
  readonly replayed: boolean;
}

export interface DryRunAnswer {
  readonly total: number;
  readonly wouldChange: number;
}

const ID_CHUNK = 1000;
const LISTED_UNKNOWN_IDS = 20;

class OperationFinishedError extends AppError {
  constructor(status: OperationStatus) {
    super('operation_finished', `The operation is already ${status}; there is nothing to cancel.`);
  }
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Distinct ids as digit strings, in ascending numeric order. */
function distinctIds(ids: readonly (number | string)[]): string[] {
  const unique = new Set(ids.map((id) => (typeof id === 'number' ? String(id) : id)));
  return [...unique].sort((a, b) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0));
}

/** The HTTP side of background operations: accept a bulk adjustment, list, show and cancel. */
@Injectable()
export class OperationsService {
  constructor(
    private readonly db: QuotaDatabase,
    private readonly recorder: OperationRecorder,
    private readonly audit: AuditService,
    private readonly operations: OperationsRepository,
  ) {}

  /**
   * Records a bulk adjustment (and its member list) in one transaction and announces it to the
   * queue once committed. With an Idempotency-Key the same key and body return the first
   * operation; unknown member ids refuse the whole request (members are never deleted, so an
   * unknown id is a caller's mistake, and a partial run would hide it).
   */
  async bulkAdjust(caller: Principal, input: BulkAdjustInput, idempotencyKey?: string): Promise<BulkAccepted> {
    const change = this.checkShape(input);
    const ids = input.memberIds ? distinctIds(input.memberIds) : null;
    const dedupeKey = idempotencyKey === undefined ? null : keyHash(caller.userId, idempotencyKey);
    const requestHash = createHash('sha256')
      .update(
        JSON.stringify([
          'bulk_adjust',
          ids,
          input.membershipType ?? null,
          input.newQuota ?? null,
          input.delta ?? null,
          input.reason ?? 'bulk_adjustment',
          input.note ?? null,
        ]),
      )
      .digest('hex');

    for (let attempt = 1; ; attempt++) {
      try {
        const accepted = await this.db.transaction(
          async (s) => {
            if (dedupeKey) {
              const replay = await this.replay(s, dedupeKey, requestHash);
              if (replay) return replay;
            }
            if (input.membershipType !== undefined) await this.requireType(s, input.membershipType);
            const operationId = await this.recorder.record(s, {
              kind: 'bulk_adjust',
              selection: ids
                ? { kind: 'member_ids' }
                : { kind: 'membership_type', membershipType: input.membershipType! },
              mode: change.mode,
              value: change.value,
              reason: input.reason ?? 'bulk_adjustment',
              note: input.note ?? null,
              payload: {
                member_ids: ids ? ids.length : undefined,
                membership_type: input.membershipType,
                new_quota: input.newQuota,
                delta: input.delta,
                reason: input.reason ?? 'bulk_adjustment',
              },
              requestedBy: caller.userId,
              total: ids ? ids.length : undefined,
              dedupeKey,
              requestHash,
            });
            if (ids) await this.storeMembers(s, operationId, ids);
            const total = await this.operations.totalOf(s, operationId);
            await this.audit.record(s.manager, {
              actor: caller,
              action: 'quota.bulk_adjust',
              entityType: 'quota_operation',
              entityId: operationId,
              before: null,
              after: {
                operation_id: operationId,
                total,
                selection: ids ? 'member_ids' : input.membershipType,
                ...change,
              },
            });
            return { operationId, total, replayed: false };
          },
          { entityManager: true },
        );
        if (!accepted.replayed) this.recorder.announce(accepted.operationId);
        return accepted;
      } catch (err) {
        // Two requests with the same new key at once: the loser replays the winner's operation.
        if (dedupeKey && dbErrorKind(err) === 'duplicate' && attempt < 3) continue;
        if (dbErrorKind(err) === 'duplicate') throw new IdempotencyKeyInUseError();
        throw err;
      }
    }
  }

  /** What a bulk adjustment would do, changing and queueing nothing. */
  async dryRun(input: BulkAdjustInput): Promise<DryRunAnswer> {
    const change = this.checkShape(input);
    return this.db.read(async (s) => {
      if (input.membershipType !== undefined) {
        await this.requireType(s, input.membershipType);
        return this.operations.previewChange(s, { membershipType: input.membershipType }, change, MAX_BALANCE);
      }
      const ids = distinctIds(input.memberIds!);
      let total = 0;
      let wouldChange = 0;
      const unknown: string[] = [];
      for (const chunk of chunks(ids, ID_CHUNK)) {
        const preview = await this.operations.previewChange(s, { memberIds: chunk }, change, MAX_BALANCE);
        total += preview.total;
        wouldChange += preview.wouldChange;
        if (preview.total < chunk.length && unknown.length < LISTED_UNKNOWN_IDS) {
          unknown.push(...(await this.unknownIds(s, chunk)));
        }
      }
      if (unknown.length > 0) throw this.unknownMembers(unknown);
      return { total, wouldChange };
    });
  }

  async get(id: string): Promise<Operation> {
    const operation = await this.db.read((s) => this.operations.findById(s, id));
    if (!operation) throw new NotFoundError('Operation');
    return operation;
  }

  async list(filter: {
    status?: OperationStatus;
    kind?: OperationKind;
    page: number;
    perPage: number;
  }): Promise<{ operations: Operation[]; total: number }> {
    return this.db.read((s) => this.operations.page(s, filter));
  }

  /**
   * A queued operation is cancelled at once; a running one is asked to stop and its worker stops
   * between chunks (what is done stays done: each chunk committed whole).
   */
  async cancel(caller: Principal, id: string): Promise<Operation> {
    await this.db.transaction(
      async (s) => {
        const status = await this.operations.lockStatus(s, id);
        if (status === null) throw new NotFoundError('Operation');
        const now = new Date();
        if (status === 'queued') {
          await this.operations.cancelQueued(s, id, now);
        } else if (status === 'running') {
          await this.operations.requestCancel(s, id, now);
        } else {
          throw new OperationFinishedError(status);
        }
        await this.audit.record(s.manager, {
          actor: caller,
          action: 'quota.operation_cancel',
          entityType: 'quota_operation',
          entityId: id,
          before: { status },
          after: { status: status === 'queued' ? 'cancelled' : 'running', cancel_requested: true },
        });
      },
      { entityManager: true },
    );
    return this.get(id);
  }

  private checkShape(input: BulkAdjustInput): { mode: BulkMode; value: number } {
    const errors: FieldError[] = [];
    const hasIds = input.memberIds !== undefined;
    const hasType = input.membershipType !== undefined;
    if (hasIds === hasType) {
      errors.push({ field: 'member_ids', message: 'exactly one of member_ids and membership_type is required' });
    }
    const hasNew = input.newQuota !== undefined;
    const hasDelta = input.delta !== undefined;
    if (hasNew === hasDelta) {
      errors.push({ field: 'new_quota', message: 'exactly one of new_quota and delta is required' });
    }
    if (errors.length > 0) throw new ValidationFailedError(errors);
    if (input.newQuota !== undefined) return { mode: 'set', value: input.newQuota };
    return { mode: 'delta', value: input.delta ?? 0 };
  }

  private async requireType(s: SqlSession, membershipType: string): Promise<void> {
    if (!(await this.operations.membershipTypeExists(s, membershipType)))
      throw new UnknownMembershipTypeError('membership_type', membershipType);
  }

  /**
   * Stores the distinct existing ids; any unknown id refuses the request (the transaction rolls
   * back). The ids are checked by a plain read and stored as VALUES: an INSERT ... SELECT from
   * members would share-lock up to 100,000 member rows until commit, holding up their consumes.
   */
  private async storeMembers(s: SqlSession, operationId: string, ids: readonly string[]): Promise<void> {
    const unknown: string[] = [];
    for (const chunk of chunks(ids, ID_CHUNK)) {
      const known = await this.operations.existingMemberIds(s, chunk);
      if (known.size < chunk.length) {
        unknown.push(...chunk.filter((id) => !known.has(id)));
        continue;
      }
      if (unknown.length > 0) continue;
      await this.operations.addMembers(s, operationId, chunk);
    }
    if (unknown.length > 0) throw this.unknownMembers(unknown);
  }

  private async unknownIds(s: SqlSession, chunk: readonly string[]): Promise<string[]> {
    const known = await this.operations.existingMemberIds(s, chunk);
    return chunk.filter((id) => !known.has(id));
  }

  private unknownMembers(unknown: readonly string[]): ValidationFailedError {
    const listed = unknown.slice(0, LISTED_UNKNOWN_IDS);
    return new ValidationFailedError([
      {
        field: 'member_ids',
        message: `unknown member ids: ${listed.join(', ')}${unknown.length > listed.length ? ', ...' : ''}`,
      },
    ]);
  }

  /** The first answer for a key still within its 24 h; an expired key is released for reuse. */
  private async replay(s: SqlSession, dedupeKey: string, requestHash: string): Promise<BulkAccepted | null> {
    const row = await this.operations.lockByDedupeKey(s, dedupeKey);
    if (!row) return null;
    if (readTimestamp(row.createdAt).getTime() + IDEMPOTENCY_TTL_MS <= Date.now()) {
      await this.operations.releaseDedupeKey(s, row.id);
      return null;
    }
    if (row.requestHash !== requestHash) throw new IdempotencyKeyMismatchError();
    return { operationId: row.id, total: row.total, replayed: true };
  }
}
