import { plainToInstance } from 'class-transformer';
import { IsString, Matches, validateSync } from 'class-validator';

export const OPERATIONS_QUEUE = 'quota-operations';

export enum JobName {
  /** Runs (or resumes) one operation from its cursor. */
  RunOperation = 'run-operation',
  /** Creates the periodic resets that are due (one scheduler, however many instances). */
  ResetTick = 'reset-tick',
}

export const RESET_TICK_SCHEDULER_ID = 'quota-reset-tick';

/** One job per operation: adding it again while it waits or runs is a no-op. */
export function operationJobId(operationId: string): string {
  return `op-${operationId}`;
}

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
