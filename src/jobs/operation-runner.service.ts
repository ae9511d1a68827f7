import { Inject, Injectable, type BeforeApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';
import { ROOT_LOGGER } from '../common/logger.token';
import { AppConfig } from '../config/app-config';
import type { HistoryReason } from '../quota/entities/quota-history.entity';
import { LedgerBulkService, type BulkChunkResult } from '../quota/ledger-bulk.service';
import { QuotaDatabase } from '../database/database';
import { WriteFreeze } from '../maintenance/write-freeze';
import { dbErrorKind } from '../database/sql-session';
import { AppError } from '../common/app-error';
import { isDatabaseUnavailable } from '../common/database-errors';
import { EventsRepository } from '../events/events.repository';
import type { NewEvent } from '../events/event-types';
import { JobsMetrics } from './jobs.metrics';
import { operationJson, type Operation, type OperationStatus } from './operation.view';
import { OperationsRepository } from './operations.repository';

/** A chunk is tried this many times in a row (with backoff) before the attempt gives up. */
const CHUNK_TRIES = 3;
const CHUNK_BACKOFF_MS = 200;

export interface RunOptions {
  /** The queue will not retry after this attempt: a chunk that still fails marks the operation failed. */
  readonly finalAttempt: boolean;
}

/** `operation.completed` / `operation.failed`: the operation as GET /admin/quota/operations/:id shows it. */
function operationFinished(op: Operation, status: 'completed' | 'failed', at: Date): NewEvent {
  return { type: `operation.${status}`, data: operationJson(op), source: `operation:${op.id}`, at };
}

/** Another runner advanced the cursor while this one waited for the chunk's locks. */
class CursorMoved extends Error {}

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
 * Runs an operation chunk by chunk from its cursor. The same code runs under BullMQ and the
 * in-process driver. Each chunk is one transaction that applies the ledger change and advances the
 * operation's cursor and counters, so progress is exact and a re-run resumes where the last
 * committed chunk ended. Cancellation, shutdown and a write freeze are honoured between chunks: a
 * frozen run stops after the chunk in hand and leaves the operation `queued`/`running`, and the
 * sweep queues it again when the freeze ends (OperationsSweeper).
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

  /** Lets the current chunk finish, then stops; the operation stays `running` and is resumed later. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.allSettled([...this.running]);
  }

  /** SIGTERM. */
  beforeApplicationShutdown(): Promise<void> {
    return this.stop();
  }

  private async runOnce(operationId: string, options: RunOptions): Promise<void> {
    let op = await this.load(operationId);
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
    const id = op.id;
    await this.db.transaction((s) => this.operations.markRunning(s, id, new Date()));
    this.logger.info({ operationId, kind: op.kind, cursor: op.lastMemberId }, 'operation running');

    for (;;) {
      if (this.stopping) {
        this.logger.info({ operationId, cursor: op.lastMemberId }, 'shutting down: operation left to resume later');
        return;
      }
      if (this.freeze.isReadOnly()) {
        this.logger.info({ operationId, cursor: op.lastMemberId }, 'write freeze: operation paused between chunks');
        return;
      }
      const current = await this.load(operationId);
      if (!current || (current.status !== 'running' && current.status !== 'queued')) return;
      op = current;
      if (op.cancelRequested) {
        await this.finish(op, 'cancelled');
        return;
      }
      let result: BulkChunkResult;
      try {
        result = await this.chunkWithRetries(op);
      } catch (err) {
        if (err instanceof CursorMoved) continue;
        if (!options.finalAttempt) throw err;
        this.logger.error({ err, operationId, cursor: op.lastMemberId }, 'operation failed');
        await this.finish(
          op,
          'failed',
          `chunk after member ${op.lastMemberId} failed ${CHUNK_TRIES} times (${op.processed} of ${op.total} processed): ${publicReason(err, op.id)}`,
        );
        return;
      }
      if (result.processed === 0) {
        await this.finish(op, 'completed');
        return;
      }
    }
  }

  private load(operationId: string): Promise<Operation | null> {
    return this.db.read((s) => this.operations.findById(s, operationId));
  }

  private async chunkWithRetries(op: Operation): Promise<BulkChunkResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.db.transaction(async (s) => {
          const result = await this.bulk.applyChunk(s, {
            operationId: op.id,
            selection:
              op.selection === 'membership_type'
                ? { kind: 'membership_type', membershipType: op.membershipType! }
                : { kind: 'member_ids' },
            afterId: op.lastMemberId,
            limit: this.config.jobs.chunkSize,
            mode: op.mode,
            value: op.value,
            reason: op.reason as HistoryReason,
            actor: op.requestedBy,
            note: op.note,
            periodStartedAt: op.periodStartedAt,
            keepsHeld: op.mode === 'set' && (op.reason === 'periodic_reset' || op.reason === 'config_change'),
          });
          if (result.processed === 0) return result;
          const advanced = await this.operations.advanceCursor(s, op.id, op.lastMemberId, result, new Date());
          if (!advanced) throw new CursorMoved();
          return result;
        });
      } catch (err) {
        if (err instanceof CursorMoved || attempt >= CHUNK_TRIES) throw err;
        this.logger.warn({ err, operationId: op.id, attempt }, 'operation chunk failed; retrying');
        await new Promise((r) => setTimeout(r, CHUNK_BACKOFF_MS * 2 ** (attempt - 1)));
      }
    }
  }

  /**
   * Ends the operation. A completed or failed one records operation.completed / operation.failed in
   * the same transaction, with the operation as the API shows it then; a cancelled one records
   * nothing: an admin asked for it and was answered.
   */
  private async finish(op: Operation, status: OperationStatus, error: string | null = null): Promise<void> {
    const now = new Date();
    const finished = await this.db.transaction(async (s) => {
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
