/**
 * Every refusal the service gives has a stable machine-readable code. Domain code throws
 * AppError (or a subclass); the problem-details filter is the only place that turns a code into
 * an HTTP status.
 */
export const ERROR_STATUS = {
  bad_request: 400,
  malformed_json: 400,
  unknown_parameter: 400,
  unauthorized: 401,
  invalid_credentials: 401,
  invalid_token: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  validation_failed: 422,
  rate_limited: 429,
  account_locked: 429,
  internal_error: 500,
  database_unavailable: 503,
  service_unavailable: 503,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof ERROR_STATUS | (string & {});

export interface FieldError {
  readonly field: string;
  readonly message: string;
}

export interface AppErrorOptions {
  /** HTTP status for codes the common table does not know (modules add their own codes). */
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
    this.status = options.status ?? (ERROR_STATUS as Record<string, number>)[code] ?? 500;
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
