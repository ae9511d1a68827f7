import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { HttpRequest } from '../common/http';
import { ValidationFailedError } from '../common/app-error';

export const IDEMPOTENCY_KEY_HEADER = 'Idempotency-Key';
const ACCEPTABLE_KEY = /^[\x20-\x7e]{1,255}$/;

/** The request's Idempotency-Key, if sent: 1-255 printable ASCII characters, else 422. */
export const IdempotencyKeyHeader = createParamDecorator((_data: unknown, ctx: ExecutionContext) => {
  const value = ctx.switchToHttp().getRequest<HttpRequest>().headers['idempotency-key'];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !ACCEPTABLE_KEY.test(value)) {
    throw new ValidationFailedError([
      { field: IDEMPOTENCY_KEY_HEADER, message: 'Idempotency-Key must be 1-255 printable ASCII characters' },
    ]);
  }
  return value;
});
