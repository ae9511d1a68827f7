import { errorStatus, type ErrorCode } from './error-codes';

export type { ErrorCode } from './error-codes';

/**
 * Every refusal the service gives has a stable machine-readable code from the catalogue
 * (error-codes.ts), which also gives its HTTP status. Domain code throws AppError (or a subclass);
 * the problem-details filter turns it into the answer.
 */
export interface FieldError {
  readonly field: string;
  readonly message: string;
}

export interface AppErrorOptions {
  /**
   * The filter's own use only: the status of a framework HttpException whose status has no code of
   * its own. Everything else answers the status the catalogue gives its code.
   */
  readonly status?: number;
  readonly errors?: readonly FieldError[];
  /** Extra members of the problem body, e.g. the current `balance` of an insufficient_quota. */
  readonly extensions?: Readonly<Record<string, unknown>>;
  readonly retryAfterSeconds?: number;
  readonly headers?: Readonly<Record<string, string>>;
}

export class AppError extends Error {
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    readonly detail: string,
    readonly options: AppErrorOptions = {},
  ) {
    super(detail);
    this.name = 'AppError';
    this.status = options.status ?? errorStatus(code);
  }
}

export class ValidationFailedError extends AppError {
  constructor(errors: readonly FieldError[], detail = 'The request has invalid fields.') {
    super('validation_failed', detail, { errors });
  }
}

export class NotFoundError extends AppError {
  constructor(what: string) {
    super('not_found', `${what} was not found.`);
  }
}
