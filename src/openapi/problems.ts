import { SetMetadata } from '@nestjs/common';
import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { ERROR_CATALOGUE, ERROR_CODES, isErrorCode, type ErrorCode } from '../common/error-codes';
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
  @ApiProperty({
    type: String,
    enum: ERROR_CODES,
    enumName: 'ProblemCode',
    example: 'validation_failed',
    description:
      ERROR_CODES.map((code) => `\`${code}\` (${ERROR_CATALOGUE[code].status}): ${ERROR_CATALOGUE[code].meaning}`).join(
        '; ',
      ) + '.',
  })
  code!: ErrorCode;
  @ApiPropertyOptional({ type: () => [FieldErrorSchema], description: 'Present on validation failures.' })
  errors?: FieldErrorSchema[];
  @ApiProperty({ type: String, description: 'Also sent as the X-Request-Id header.' }) request_id!: string;
}

@ApiSchema({ name: 'InsufficientQuotaProblem', description: 'The 409 `insufficient_quota` refusal of a consume.' })
export class InsufficientQuotaProblemSchema extends ProblemSchema {
  @ApiProperty({ type: 'integer', minimum: 0, description: "The member's current balance." }) balance!: number;
  @ApiProperty({ type: 'integer', minimum: 1, description: 'The amount that was asked for.' }) requested!: number;
}

/** Codes whose body carries more than the common members, and the schema that says which. */
export const PROBLEM_SCHEMAS: Readonly<Partial<Record<ErrorCode, string>>> = {
  insufficient_quota: 'InsufficientQuotaProblem',
};

export const PROBLEM_MODELS = [FieldErrorSchema, ProblemSchema, InsufficientQuotaProblemSchema];
export { PROBLEM_CONTENT_TYPE };

export const API_PROBLEMS_KEY = 'openapi:problems';

/**
 * The problem codes an endpoint can answer besides the ones every endpoint of its kind has
 * (auth, rate limit, body parsing, outages: buildOpenApiDocument adds those). Documentation only.
 */
export const ApiProblems = (...codes: ErrorCode[]) => {
  // The compiler refuses an unknown code; this also catches one cast past it.
  for (const code of codes as readonly string[]) {
    if (!isErrorCode(code)) throw new Error(`ApiProblems: unknown problem code "${code}"`);
  }
  return SetMetadata(API_PROBLEMS_KEY, codes);
};
