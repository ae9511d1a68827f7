import { ArgumentsHost, Catch, ExceptionFilter, HttpException } from '@nestjs/common';
import type { Logger } from 'pino';
import { AppError, type FieldError } from './app-error';
import { statusTitle, type ErrorCode } from './error-codes';
import { isDatabaseUnavailable } from './database-errors';
import type { HttpReply, HttpRequest } from './http';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';
export const PROBLEM_TYPE_BASE = 'urn:quota-service:problem:';

interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  errors?: readonly FieldError[];
  request_id: string;
  [extension: string]: unknown;
}

/** Framework HttpExceptions (Nest's own refusals) get the catalogue's code for their status. */
const CODE_BY_HTTP_STATUS: Readonly<Partial<Record<number, ErrorCode>>> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  409: 'conflict',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  422: 'validation_failed',
  429: 'rate_limited',
  503: 'service_unavailable',
};

const DATABASE_RETRY_AFTER_SECONDS = 5;

/**
 * What Fastify's body parsing refused, told by the error's code (it arrives as an HttpException's
 * cause, or on its own for a JSON syntax error).
 */
function bodyParsingProblem(error: unknown): AppError | undefined {
  const failure = error as { code?: string; statusCode?: number } | undefined;
  switch (failure?.code ?? '') {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new AppError('malformed_json', 'The request body is not valid JSON.');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError('payload_too_large', 'The request body is larger than this endpoint accepts.');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AppError('unsupported_media_type', 'Request bodies must be application/json.');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new AppError('bad_request', 'The request body does not match its Content-Length.');
  }
  // The JSON parser's own SyntaxError (including a forbidden __proto__ key), marked as a 400.
  if (error instanceof SyntaxError && failure?.statusCode === 400) {
    return new AppError('malformed_json', 'The request body is not valid JSON.');
  }
  return undefined;
}

function fromHttpException(exception: HttpException): AppError {
  const parsed = bodyParsingProblem(exception.cause);
  if (parsed) return parsed;
  const status = exception.getStatus();
  const response = exception.getResponse();
  const message: unknown = typeof response === 'object' && 'message' in response ? response.message : response;
  let detail = typeof message === 'string' ? message : statusTitle(status, 'Request failed');
  if (status === 404) detail = 'No such route.';
  return new AppError(CODE_BY_HTTP_STATUS[status] ?? (status >= 500 ? 'internal_error' : 'bad_request'), detail, {
    status,
  });
}

/** Maps any thrown value to the AppError the client will see; unexpected ones are logged. */
export function toAppError(exception: unknown, logger: Logger, requestId: string): AppError {
  // Error lines carry the request id, like the access-log line of the same request.
  const log = { error: (fields: object, msg: string) => logger.error({ ...fields, req: { id: requestId } }, msg) };
  if (exception instanceof AppError) {
    if (exception.status >= 500) log.error({ err: exception }, exception.code);
    return exception;
  }
  if (exception instanceof HttpException) return fromHttpException(exception);
  const parsing = bodyParsingProblem(exception);
  if (parsing) return parsing;
  if (isDatabaseUnavailable(exception)) {
    log.error({ err: exception }, 'database unavailable');
    return new AppError('database_unavailable', 'The database is unavailable; try again shortly.', {
      retryAfterSeconds: DATABASE_RETRY_AFTER_SECONDS,
    });
  }
  log.error({ err: exception }, 'unhandled error');
  return new AppError(
    'internal_error',
    `An unexpected error occurred. Quote request id ${requestId} when reporting it.`,
  );
}

export function sendProblem(reply: HttpReply, error: AppError, requestId: string): void {
  if (reply.sent || reply.raw.headersSent) {
    reply.raw.end();
    return;
  }
  const problem: Problem = {
    type: `${PROBLEM_TYPE_BASE}${error.code}`,
    title: statusTitle(error.status),
    status: error.status,
    detail: error.detail,
    code: error.code,
    ...(error.options.extensions ?? {}),
    ...(error.options.errors ? { errors: error.options.errors } : {}),
    request_id: requestId,
  };
  for (const [name, value] of Object.entries(error.options.headers ?? {})) void reply.header(name, value);
  const retryAfter = error.options.retryAfterSeconds;
  if (retryAfter !== undefined) void reply.header('Retry-After', String(Math.max(1, Math.ceil(retryAfter))));
  void reply.status(error.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(problem));
}

/** A caller check a route left pending (auth's PendingCallerCheck, as far as errors need it). */
interface PendingCheck {
  readonly confirmed: boolean;
  settle(): Promise<void>;
}

type LoggedRequest = HttpRequest & { user?: { pendingCheck?: PendingCheck } };

/**
 * Turns every error into RFC 9457 problem+json. Internal details (stack, SQL, driver names) are
 * logged with the request id and never sent to the client.
 */
@Catch()
export class ProblemDetailsFilter implements ExceptionFilter {
  constructor(private readonly logger: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    this.handle(exception, http.getRequest<LoggedRequest>(), http.getResponse<HttpReply>());
  }

  handle(exception: unknown, req: LoggedRequest, reply: HttpReply): void {
    const requestId = req.id;
    const pending = req.user?.pendingCheck;
    if (pending && !pending.confirmed) {
      // A token that no longer holds is told 401, not what its request would otherwise have got.
      pending.settle().then(
        () => sendProblem(reply, toAppError(exception, this.logger, requestId), requestId),
        (refusal: unknown) => sendProblem(reply, toAppError(refusal, this.logger, requestId), requestId),
      );
      return;
    }
    sendProblem(reply, toAppError(exception, this.logger, requestId), requestId);
  }
}
