/**
 * The catalogue of every problem code the service answers, with its HTTP status: the one list
 * the problem-details filter, the services (AppError takes an ErrorCode) and the OpenAPI
 * document (`Problem.code` is this enum; each route lists its codes) are built from. A code that
 * is not here does not compile; src/common/error-codes.spec.ts checks that every code here is
 * raised somewhere and test/openapi/error-codes.spec.ts that the document lists exactly these.
 */

/** The title of a problem is the reason phrase of its status (RFC 9457 `title`). */
export const STATUS_TITLES = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
} as const;

export type ProblemStatus = keyof typeof STATUS_TITLES;

interface ErrorCodeEntry {
  readonly status: ProblemStatus;
  /** What the code means, for the OpenAPI document's description of `Problem.code`. */
  readonly meaning: string;
  /**
   * The filter's answer to a framework HttpException of this status: no route raises it, so no
   * route documents it (it is still in the `Problem.code` enum).
   */
  readonly fallback?: true;
}

export const ERROR_CATALOGUE = {
  // Request shape and parsing (the filter, body parsing, validation).
  bad_request: { status: 400, meaning: 'the request could not be read (e.g. a body that does not match its length)' },
  malformed_json: { status: 400, meaning: 'the body is not valid JSON, or empty where a JSON object is required' },
  validation_failed: { status: 422, meaning: 'fields, query parameters or headers are invalid; `errors` lists them' },
  payload_too_large: { status: 413, meaning: 'the body is larger than the endpoint accepts' },
  unsupported_media_type: { status: 415, meaning: 'a body that is not application/json' },
  not_found: { status: 404, meaning: 'no such route, or an id that is malformed or unknown' },
  method_not_allowed: { status: 405, meaning: 'a framework refusal of the method', fallback: true },
  conflict: { status: 409, meaning: 'a framework conflict without a more specific code', fallback: true },
  // Authentication and access (auth, metrics, throttle).
  unauthorized: { status: 401, meaning: 'no bearer token was sent' },
  invalid_token: { status: 401, meaning: 'the bearer token is invalid, expired or revoked' },
  invalid_credentials: { status: 401, meaning: 'the email or password is incorrect' },
  forbidden: { status: 403, meaning: "the caller's role may not use this endpoint" },
  rate_limited: { status: 429, meaning: 'too many requests; see Retry-After' },
  account_locked: { status: 429, meaning: 'too many failed logins; see Retry-After' },
  // Users.
  email_taken: { status: 409, meaning: 'a user with this email already exists' },
  last_admin: { status: 409, meaning: 'the change would leave no active admin' },
  // Quota.
  insufficient_quota: {
    status: 409,
    meaning: 'the balance is lower than the amount; `balance` and `requested` say by how much',
  },
  member_inactive: { status: 409, meaning: 'the member is inactive' },
  config_inactive: { status: 409, meaning: "the member's quota config is inactive" },
  idempotency_key_in_use: {
    status: 409,
    meaning: 'a request with this Idempotency-Key is still running; see Retry-After',
  },
  idempotency_key_mismatch: { status: 422, meaning: 'this Idempotency-Key was used with a different request' },
  duplicate_membership_type: { status: 409, meaning: 'a config for this membership type already exists' },
  config_in_use: { status: 409, meaning: 'members still have this membership type' },
  member_exists: { status: 409, meaning: 'members with these external ids already exist; `external_ids` lists them' },
  negative_balance: { status: 422, meaning: 'the change would take the balance below 0' },
  balance_out_of_range: { status: 422, meaning: 'the change would take the balance above 2147483647' },
  hold_settled: { status: 409, meaning: 'the hold has already been committed, released or expired' },
  hold_expired: { status: 409, meaning: 'the hold expired before it was settled; its units were given back' },
  // Background operations.
  operation_finished: { status: 409, meaning: 'the operation has already finished; there is nothing to cancel' },
  // Webhooks.
  delivery_pending: { status: 409, meaning: 'the event already has a pending delivery to this webhook' },
  webhook_inactive: { status: 409, meaning: 'the webhook is inactive, so nothing would be sent to it' },
  // Outages and the unexpected.
  internal_error: { status: 500, meaning: 'an unexpected error; quote the request id' },
  database_unavailable: { status: 503, meaning: 'the database is unreachable; see Retry-After' },
  read_only: {
    status: 503,
    meaning: 'the service is in maintenance (write freeze): changes are refused, reads work; see Retry-After',
  },
  service_unavailable: { status: 503, meaning: 'a framework refusal while the service cannot answer', fallback: true },
} as const satisfies Record<string, ErrorCodeEntry>;

/** Every problem code, a closed union: AppError and the OpenAPI decorators accept nothing else. */
export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export const ERROR_CODES = Object.keys(ERROR_CATALOGUE) as readonly ErrorCode[];

export function isErrorCode(value: string): value is ErrorCode {
  return Object.prototype.hasOwnProperty.call(ERROR_CATALOGUE, value);
}

export function errorStatus(code: ErrorCode): ProblemStatus {
  return ERROR_CATALOGUE[code].status;
}

export function statusTitle(status: number, fallback = 'Error'): string {
  return (STATUS_TITLES as Readonly<Partial<Record<number, string>>>)[status] ?? fallback;
}
