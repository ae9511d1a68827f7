import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsInt, IsISO8601, IsString, Matches, Max, MaxLength, Min, NotEquals } from 'class-validator';
import { HISTORY_REASONS, type HistoryReason } from '../entities/quota-history.entity';
import { Absentable, ID_PATTERN, INT32_MAX, NOTE_MAX_LENGTH, QueryInt } from './validation';

export const ADJUST_REASONS = ['manual_adjustment', 'refund', 'consumption'] as const;
export type AdjustReason = (typeof ADJUST_REASONS)[number];
export const PAGE_MAX_LIMIT = 500;
export const PAGE_DEFAULT_LIMIT = 50;

export class AmountDto {
  @ApiProperty({ type: 'integer', minimum: 1, maximum: INT32_MAX, example: 1 })
  @IsInt()
  @Min(1)
  @Max(INT32_MAX)
  amount!: number;

  @ApiPropertyOptional({ type: String, maxLength: NOTE_MAX_LENGTH })
  @Absentable()
  @IsString()
  @MaxLength(NOTE_MAX_LENGTH)
  note?: string;
}

/** Exactly one of delta and new_quota; the service checks the "exactly one". */
export class AdjustDto {
  @ApiPropertyOptional({
    type: 'integer',
    minimum: -INT32_MAX,
    maximum: INT32_MAX,
    not: { enum: [0] },
    description: 'A signed change; exactly one of delta and new_quota.',
  })
  @Absentable()
  @IsInt()
  @NotEquals(0, { message: 'delta must not be 0' })
  @Min(-INT32_MAX)
  @Max(INT32_MAX)
  delta?: number;

  @ApiPropertyOptional({
    type: 'integer',
    minimum: 0,
    maximum: INT32_MAX,
    description: 'The new balance; exactly one of delta and new_quota.',
  })
  @Absentable()
  @IsInt()
  @Min(0)
  @Max(INT32_MAX)
  new_quota?: number;

  @ApiPropertyOptional({ enum: ADJUST_REASONS, enumName: 'AdjustReason', default: 'manual_adjustment' })
  @Absentable()
  @IsIn(ADJUST_REASONS, { message: `reason must be one of ${ADJUST_REASONS.join(', ')}` })
  reason?: AdjustReason;

  @ApiPropertyOptional({ type: String, maxLength: NOTE_MAX_LENGTH })
  @Absentable()
  @IsString()
  @MaxLength(NOTE_MAX_LENGTH)
  note?: string;
}

const MEMBER_ID_MESSAGE = 'member_id must be a member id (a string of digits)';

/** `limit` and `cursor` of a newest-first list paged with `meta.next_cursor`. */
export class CursorPageQuery {
  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: PAGE_MAX_LIMIT, default: PAGE_DEFAULT_LIMIT })
  @Absentable()
  @QueryInt()
  @IsInt()
  @Min(1)
  @Max(PAGE_MAX_LIMIT)
  limit?: number;

  @ApiPropertyOptional({
    type: String,
    pattern: '^[A-Za-z0-9_-]{1,64}$',
    description: 'next_cursor of the previous page.',
  })
  @Absentable()
  @IsString()
  @Matches(/^[A-Za-z0-9_-]{1,64}$/, { message: 'cursor must be a next_cursor value from an earlier page' })
  cursor?: string;
}

export class HistoryQuery extends CursorPageQuery {
  @ApiPropertyOptional({ type: String, pattern: ID_PATTERN.source })
  @Absentable()
  @IsString({ message: MEMBER_ID_MESSAGE })
  @Matches(ID_PATTERN, { message: MEMBER_ID_MESSAGE })
  member_id?: string;

  @ApiPropertyOptional({ enum: HISTORY_REASONS, enumName: 'HistoryReason' })
  @Absentable()
  @IsIn(HISTORY_REASONS, { message: `reason must be one of ${HISTORY_REASONS.join(', ')}` })
  reason?: HistoryReason;

  @ApiPropertyOptional({ type: String, format: 'date-time', description: 'Rows created at or after this time.' })
  @Absentable()
  @IsISO8601({ strict: true, strictSeparator: true }, { message: 'from must be an ISO-8601 timestamp' })
  from?: string;

  @ApiPropertyOptional({ type: String, format: 'date-time', description: 'Rows created before this time.' })
  @Absentable()
  @IsISO8601({ strict: true, strictSeparator: true }, { message: 'to must be an ISO-8601 timestamp' })
  to?: string;
}

export class IntegrityQuery {
  @ApiPropertyOptional({ type: String, pattern: ID_PATTERN.source, description: 'Check one member only.' })
  @Absentable()
  @IsString({ message: MEMBER_ID_MESSAGE })
  @Matches(ID_PATTERN, { message: MEMBER_ID_MESSAGE })
  member_id?: string;
}
