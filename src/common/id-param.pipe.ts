import { Injectable, type PipeTransform, type Type } from '@nestjs/common';
import { NotFoundError } from './app-error';

/** A row id as the API shows it: a positive BIGINT as a string of digits. */
export const ID_PATTERN = /^[1-9]\d{0,18}$/;
const BIGINT_MAX = 9_223_372_036_854_775_807n;

/**
 * A pipe for an `:id` path parameter. A malformed id (`/members/abc`, or one past BIGINT) names
 * something that cannot exist: 404 with `what` in the detail, like any other unknown id.
 */
export function idParamPipe(what: string): Type<PipeTransform<string, string>> {
  @Injectable()
  class IdParamPipe implements PipeTransform<string, string> {
    transform(value: string): string {
      if (typeof value !== 'string' || !ID_PATTERN.test(value) || BigInt(value) > BIGINT_MAX) {
        throw new NotFoundError(what);
      }
      return value;
    }
  }
  return IdParamPipe;
}
