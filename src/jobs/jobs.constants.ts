import { plainToInstance } from 'class-transformer';
import { IsString, Matches, validateSync } from 'class-validator';

export const OPERATIONS_QUEUE = 'quota-operations';

export enum JobName {
  /** Runs (or resumes) one operation: plans its chunks, starts helpers, works chunks, finishes it. */
  RunOperation = 'run-operation',
  /** Helps run one operation: works its free chunks, then ends. */
  RunOperationChunks = 'run-operation-chunks',
  /** Creates the periodic resets that are due (one scheduler, however many instances). */
  ResetTick = 'reset-tick',
}

export const RESET_TICK_SCHEDULER_ID = 'quota-reset-tick';

/** One job per operation: adding it again while it waits or runs is a no-op. */
export function operationJobId(operationId: string): string {
  return `op-${operationId}`;
}

/** The operation's n-th helper job (1-based); the same rule: one of each at a time. */
export function helperJobId(operationId: string, n: number): string {
  return `op-${operationId}-h${n}`;
}

/**
 * At most this many runs work on one operation at once, across all workers (its own run and its
 * helpers): each claims and waits on the same few rows, so more would mostly queue on them.
 */
export const MAX_RUNS_PER_OPERATION = 32;

export class RunOperationPayload {
  @IsString()
  @Matches(/^[1-9]\d{0,18}$/, { message: 'operationId must be an operation id' })
  operationId!: string;
}

/** Job payloads are validated like HTTP input: a malformed job fails instead of doing anything. */
export function parseRunOperationPayload(data: unknown): RunOperationPayload {
  const payload = plainToInstance(RunOperationPayload, data ?? {});
  const errors = validateSync(payload, { whitelist: true, forbidNonWhitelisted: true });
  if (errors.length > 0) {
    throw new Error(`invalid ${JobName.RunOperation} payload: ${errors.map((e) => e.toString()).join('; ')}`);
  }
  return payload;
}

/** Retries of a job that threw (the operation resumes from its cursor each time). */
export const JOB_ATTEMPTS = 3;
export const JOB_BACKOFF_MS = 1000;
