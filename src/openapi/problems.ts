import { SetMetadata } from '@nestjs/common';
import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { ERROR_STATUS } from '../common/app-error';
import { PROBLEM_CONTENT_TYPE } from '../common/problem-details.filter';

@ApiSchema({ name: 'FieldError' })
export class FieldErrorSchema {
  @ApiProperty({ type: String, example: 'max_quota' }) field!: string;
  @ApiProperty({ type: String, example: 'max_quota must not be less than 0' }) message!: string;
}

@ApiSchema({
  name: 'Problem',
  description:
    'RFC 9457 problem details, sent as application/problem+json for every refusal. `code` is the stable ' +
    'machine-readable reason; some codes add members (for example `balance` on insufficient_quota).',
})
export class ProblemSchema {
  @ApiProperty({ type: String, example: 'urn:quota-service:problem:validation_failed' }) type!: string;
  @ApiProperty({ type: String, example: 'Unprocessable Content' }) title!: string;
  @ApiProperty({ type: 'integer', minimum: 400, maximum: 599, example: 422 }) status!: number;
  @ApiProperty({ type: String, example: 'The request has invalid fields.' }) detail!: string;
  @ApiProperty({ type: String, example: 'validation_failed' }) code!: string;
  @ApiPropertyOptional({ type: () => [FieldErrorSchema], description: 'Present on validation failures.' })
  errors?: FieldErrorSchema[];
  @ApiProperty({ type: String, description: 'Also sent as the X-Request-Id header.' }) request_id!: string;
}

@ApiSchema({ name: 'InsufficientQuotaProblem', description: 'The 409 `insufficient_quota` refusal of a consume.' })
export class InsufficientQuotaProblemSchema extends ProblemSchema {
  @ApiProperty({ type: 'integer', minimum: 0, description: "The member's current balance." }) balance!: number;
  @ApiProperty({ type: 'integer', minimum: 1, description: 'The amount that was asked for.' }) requested!: number;
}

/**
 * Every problem code a client can receive, with its status. The common codes come from the
 * shared table; the modules' own codes are listed here (a unit test checks them against the
 * error classes that raise them).
 */
export const PROBLEM_STATUS: Readonly<Record<string, number>> = {
  ...ERROR_STATUS,
  email_taken: 409,
  last_admin: 409,
  insufficient_quota: 409,
  member_inactive: 409,
  config_inactive: 409,
  idempotency_key_in_use: 409,
  duplicate_membership_type: 409,
  config_in_use: 409,
  member_exists: 409,
  operation_finished: 409,
  negative_balance: 422,
  balance_out_of_range: 422,
  idempotency_key_mismatch: 422,
};

/** Codes whose body carries more than the common members, and the schema that says which. */
export const PROBLEM_SCHEMAS: Readonly<Record<string, string>> = {
  insufficient_quota: 'InsufficientQuotaProblem',
};

export const PROBLEM_MODELS = [FieldErrorSchema, ProblemSchema, InsufficientQuotaProblemSchema];
export { PROBLEM_CONTENT_TYPE };

export const API_PROBLEMS_KEY = 'openapi:problems';

/**
 * The problem codes an endpoint can answer besides the ones every endpoint of its kind has
 * (auth, rate limit, body parsing, outages: buildOpenApiDocument adds those). Documentation only.
 */
export const ApiProblems = (...codes: string[]) => {
  for (const code of codes) {
    if (PROBLEM_STATUS[code] === undefined) throw new Error(`ApiProblems: unknown problem code "${code}"`);
  }
  return SetMetadata(API_PROBLEMS_KEY, codes);
};
