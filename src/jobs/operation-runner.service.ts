import { Inject, Injectable, type BeforeApplicationShutdown } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { ROOT_LOGGER } from '../common/logger.token';
import { AppConfig } from '../config/app-config';
import type { HistoryReason } from '../quota/entities/quota-history.entity';
import { LedgerBulkService, type BulkChunkResult, type BulkTarget } from '../quota/ledger-bulk.service';
import { QuotaDatabase } from '../database/database';
import { WriteFreeze } from '../maintenance/write-freeze';
import { dbErrorKind, type SqlSession } from '../database/sql-session';
import { AppError } from '../common/app-error';
import { isDatabaseUnavailable } from '../common/database-errors';
import { EventsRepository } from '../events/events.repository';
import type { NewEvent } from '../events/event-types';
import { JobsMetrics } from './jobs.metrics';
import { operationJson, type Operation, type OperationStatus } from './operation.view';
import { OperationChunksRepository, type ChunkRange, type ClaimedChunk } from './operation-chunks.repository';
import { OperationsRepository } from './operations.repository';

/** A chunk is tried this many times in a row (with backoff) before the attempt gives up. */
const CHUNK_TRIES = 3;
const CHUNK_BACKOFF_MS = 200;
/** Planning spans at most this many chunks; a longer span is split as it is applied. */
const MAX_PLANNED_CHUNKS = 10_000;

export interface RunOptions {
  /** The queue will not retry after this attempt: a chunk that still fails marks the operation failed. */
  readonly finalAttempt: boolean;
  /**
   * The operation's own run (one per operation at a time): it plans the chunks, waits out chunks
   * other runners hold and finishes the operation. Otherwise a helper: it takes chunks while there
   * are free ones, and hands back a chunk that keeps failing instead of failing the operation.
   */
  readonly lead: boolean;
  /** Called by a lead once the chunks are planned, with how many are pending (to start helpers). */
  readonly onPlanned?: (pendingChunks: number) => Promise<void>;
}

/** `operation.completed` / `operation.failed`: the operation as GET /admin/quota/operations/:id shows it. */
function operationFinished(op: Operation, status: 'completed' | 'failed', at: Date): NewEvent {
  return { type: `operation.${status}`, data: operationJson(op), source: `operation:${op.id}`, at };
}

/** The chunk's lease went to another runner before this one locked it: nothing was applied. */
class ChunkTaken extends Error {}
/** The operation stopped running (cancelled, failed) while the chunk was applied: rolled back. */
class OperationEnded extends Error {}

/** This process's part of a claim token: who did a chunk (quota_operation_chunks.claimed_by). */
const PROCESS_NAME = `${hostname().slice(0, 40)}:${process.pid}`;

/**
 * Why an operation failed, in words fit for its record: admins read it through the API, so the
 * driver's message (host, port, SQL, library names) goes to the log only, with the operation id.
 */
export function publicReason(err: unknown, operationId: string): string {
  if (err instanceof AppError) return err.detail;
  if (isDatabaseUnavailable(err)) return 'the database was unreachable';
  const kind = dbErrorKind(err);
  if (kind === 'deadlock' || kind === 'lock_timeout') return 'the database kept refusing it over lock conflicts';
  return `an unexpected error; the service log has the details under operationId ${operationId}`;
}

/**
 * Runs an operation's chunks; the same code runs under BullMQ and the in-process driver, and any
 * number of runs (in any number of processes) can work on one operation at once.
 *
 * The lead run plans the chunks once (member id ranges of JOBS_CHUNK_SIZE members, the last one
 * open-ended) in quota_operation_chunks. Every run then claims a free chunk with a lease and
 * applies it in ONE transaction that also marks the chunk done and adds its counts to the
 * operation: a crash commits the whole chunk or nothing, and a done chunk is never claimed again,
 * so each member changes once (the unique history key per operation and member backs this up). A
 * lapsed lease (a killed worker) lets another run take the chunk. Whoever finds no chunk pending
 * finishes the operation with a conditional update, so exactly one records operation.completed.
 *
 * Cancellation, shutdown and a write freeze are honoured between chunks: a frozen or stopping run
 * ends after the chunk in hand and leaves the operation `running`, and the sweep queues it again
 * (OperationsSweeper).
 */
@Injectable()
export class OperationRunner implements BeforeApplicationShutdown {
  private stopping = false;
  private readonly running = new Set<Promise<unknown>>();

  constructor(
    private readonly db: QuotaDatabase,
    private readonly bulk: LedgerBulkService,
    private readonly metrics: JobsMetrics,
    private readonly config: AppConfig,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
    private readonly operations: OperationsRepository,
    private readonly chunks: OperationChunksRepository,
    private readonly events: EventsRepository,
    private readonly freeze: WriteFreeze,
  ) {}

  get isStopping(): boolean {
    return this.stopping;
  }

  async run(operationId: string, options: RunOptions): Promise<void> {
    const run = this.runOnce(operationId, options);
    this.running.add(run);
    try {
      await run;
    } finally {
      this.running.delete(run);
    }
  }

  /** Lets the chunks in hand finish, then stops; the operation stays `running` and is resumed later. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.allSettled([...this.running]);
  }

  /** SIGTERM. */
  beforeApplicationShutdown(): Promise<void> {
    return this.stop();
  }

  private async runOnce(operationId: string, options: RunOptions): Promise<void> {
    const op = await this.load(operationId);
    if (!op) {
      this.logger.warn({ operationId }, 'job for an unknown operation ignored');
      return;
    }
    if (op.status !== 'queued' && op.status !== 'running') return;
    if (this.freeze.isReadOnly()) {
      this.logger.info({ operationId }, 'write freeze: operation left to resume after it');
      return;
    }
    if (op.cancelRequested) {
      await this.finish(op, 'cancelled');
      return;
    }
    if (options.lead) {
      const pending = await this.plan(op);
      if (pending === null) return;
      this.logger.info({ operationId, kind: op.kind, pendingChunks: pending }, 'operation running');
      if (pending > 1 && options.onPlanned) {
        await options.onPlanned(pending).catch((err: unknown) => {
          this.logger.warn({ err, operationId }, 'could not start helpers; the operation runs without them');
        });
      }
    }

    for (;;) {
      if (this.stopping) {
        this.logger.info({ operationId }, 'shutting down: operation left to resume later');
        return;
      }
      if (this.freeze.isReadOnly()) {
        this.logger.info({ operationId }, 'write freeze: operation paused between chunks');
        return;
      }
      const current = await this.load(operationId);
      if (!current || (current.status !== 'running' && current.status !== 'queued')) return;
      if (current.cancelRequested) {
        await this.finish(current, 'cancelled');
        return;
      }
      const token = `${PROCESS_NAME}:${randomBytes(4).toString('hex')}`;
      const now = new Date();
      const chunk = await this.db.transaction((s) =>
        this.chunks.claim(s, operationId, token, now, new Date(now.getTime() + this.config.jobs.lockDurationMs)),
      );
      if (!chunk) {
        const counts = await this.db.read((s) => this.chunks.counts(s, operationId));
        if (counts.planned > 0 && counts.pending === 0) {
          await this.finish(current, 'completed');
          return;
        }
        // Not planned yet (a helper is early), or every pending chunk is leased: a helper leaves
        // them to their runners; the lead waits, and takes a chunk over once its lease lapses.
        if (!options.lead) return;
        await new Promise((r) => setTimeout(r, this.pollMs()));
        continue;
      }
      try {
        await this.applyWithRetries(current, chunk, token);
      } catch (err) {
        if (err instanceof ChunkTaken) continue;
        if (err instanceof OperationEnded) return;
        // Best effort: with the database away the lease simply lapses.
        await this.db
          .transaction((s) => this.chunks.release(s, chunk.id, token, new Date()))
          .catch((releaseErr: unknown) =>
            this.logger.warn({ err: releaseErr, operationId }, 'could not hand a chunk back'),
          );
        if (!options.lead) {
          this.logger.warn(
            { err, operationId, chunk: chunk.id },
            'chunk handed back after failing; the lead retries it',
          );
          return;
        }
        if (!options.finalAttempt) throw err;
        this.logger.error({ err, operationId, chunk: chunk.id }, 'operation failed');
        const latest = (await this.load(operationId)) ?? current;
        await this.finish(
          latest,
          'failed',
          `chunk after member ${chunk.fromMemberId} failed ${CHUNK_TRIES} times (${latest.processed} of ${latest.total} processed): ${publicReason(err, operationId)}`,
        );
        return;
      }
    }
  }

  /** How often a lead looks again while other runners hold the pending chunks. */
  private pollMs(): number {
    return Math.min(1000, Math.max(50, Math.floor(this.config.jobs.lockDurationMs / 10)));
  }

  /**
   * Marks the operation running and, the first time, plans its chunks from its cursor (a run from
   * before chunks existed resumes where it stopped); the operation row's lock makes two leads plan
   * once. Ranges end at every JOBS_CHUNK_SIZE-th member, found one index walk at a time, so no
   * member id list is ever held. Returns the pending chunks; null when the operation has ended.
   */
  private plan(op: Operation): Promise<number | null> {
    const span = Math.max(this.config.jobs.chunkSize, Math.ceil(op.total / MAX_PLANNED_CHUNKS));
    const target = this.target(op);
    return this.db.transaction(async (s) => {
      const status = await this.operations.lockStatus(s, op.id);
      if (status !== 'queued' && status !== 'running') return null;
      const now = new Date();
      await this.operations.markRunning(s, op.id, now);
      const counts = await this.chunks.counts(s, op.id);
      if (counts.planned > 0) return counts.pending;
      const ranges: ChunkRange[] = [];
      let from = op.lastMemberId;
      for (;;) {
        const to = await this.bulk.rangeEnd(s, target, from, span);
        ranges.push({ fromMemberId: from, toMemberId: to });
        if (to === null) break;
        from = to;
      }
      await this.chunks.insert(s, op.id, ranges, now);
      return ranges.length;
    });
  }

  private load(operationId: string): Promise<Operation | null> {
    return this.db.read((s) => this.operations.findById(s, operationId));
  }

  private target(op: Operation): BulkTarget {
    return {
      operationId: op.id,
      selection:
        op.selection === 'membership_type'
          ? { kind: 'membership_type', membershipType: op.membershipType! }
          : { kind: 'member_ids' },
    };
  }

  private async applyWithRetries(op: Operation, chunk: ClaimedChunk, token: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.db.transaction((s) => this.apply(s, op, chunk, token));
        return;
      } catch (err) {
        if (err instanceof ChunkTaken || err instanceof OperationEnded || attempt >= CHUNK_TRIES) throw err;
        this.logger.warn({ err, operationId: op.id, chunk: chunk.id, attempt }, 'operation chunk failed; retrying');
        await new Promise((r) => setTimeout(r, CHUNK_BACKOFF_MS * 2 ** (attempt - 1)));
      }
    }
  }

  /**
   * One chunk, one transaction: the chunk row locked (and still this claim's), up to
   * JOBS_CHUNK_SIZE members of its range changed, a longer range split so the rest is another
   * chunk, the chunk marked done and its counts added to the running operation.
   */
  private async apply(s: SqlSession, op: Operation, chunk: ClaimedChunk, token: string): Promise<void> {
    if (!(await this.chunks.lockClaimed(s, chunk.id, token))) throw new ChunkTaken();
    const limit = this.config.jobs.chunkSize;
    const target = this.target(op);
    const result: BulkChunkResult = await this.bulk.applyChunk(s, {
      ...target,
      afterId: chunk.fromMemberId,
      upToId: chunk.toMemberId,
      limit,
      mode: op.mode,
      value: op.value,
      reason: op.reason as HistoryReason,
      actor: op.requestedBy,
      note: op.note,
      periodStartedAt: op.periodStartedAt,
      keepsHeld: op.mode === 'set' && (op.reason === 'periodic_reset' || op.reason === 'config_change'),
    });
    const now = new Date();
    const last = result.lastMemberId;
    if (
      result.processed === limit &&
      last !== null &&
      (await this.bulk.hasMembersIn(s, target, last, chunk.toMemberId))
    ) {
      await this.chunks.split(s, op.id, chunk, last, now);
    }
    await this.chunks.markDone(s, chunk.id, result, now);
    if (!(await this.operations.addChunkProgress(s, op.id, result, now))) throw new OperationEnded();
  }

  /**
   * Ends the operation. A completed or failed one records operation.completed / operation.failed in
   * the same transaction, with the operation as the API shows it then; a cancelled one records
   * nothing: an admin asked for it and was answered.
   */
  private async finish(op: Operation, status: OperationStatus, error: string | null = null): Promise<void> {
    const now = new Date();
    const finished = await this.db.transaction(async (s) => {
      // A split plans a chunk only inside the transaction of a pending one, so none pending now
      // means none ever again.
      if (status === 'completed' && (await this.chunks.counts(s, op.id)).pending > 0) return false;
      if (!(await this.operations.finish(s, op.id, status, error, now))) return false;
      if (status === 'completed' || status === 'failed') {
        const ended = await this.operations.findById(s, op.id);
        if (ended) await this.events.record(s, operationFinished(ended, status, now));
      }
      return true;
    });
    if (!finished) return;
    const started = op.startedAt ?? op.createdAt;
    this.metrics.duration.observe({ kind: op.kind, status }, Math.max(0, now.getTime() - started.getTime()) / 1000);
    this.logger.info({ operationId: op.id, kind: op.kind, status }, 'operation finished');
  }
}
