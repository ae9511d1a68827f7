import { IsIn, IsInt, IsISO8601, IsString, Matches, Max, MaxLength, Min, NotEquals } from 'class-validator';
import { HISTORY_REASONS, type HistoryReason } from '../entities/quota-history.entity';
import { Absentable, ID_PATTERN, INT32_MAX, NOTE_MAX_LENGTH, QueryInt } from './validation';

export const ADJUST_REASONS = ['manual_adjustment', 'refund', 'consumption'] as const;
export type AdjustReason = (typeof ADJUST_REASONS)[number];
export const HISTORY_MAX_LIMIT = 500;
export const HISTORY_DEFAULT_LIMIT = 50;

export class AmountDto {
  @IsInt()
  @Min(1)
  @Max(INT32_MAX)
  amount!: number;

  @Absentable()
  @IsString()
  @MaxLength(NOTE_MAX_LENGTH)
  note?: string;
}

/** Exactly one of delta and new_quota; the service checks the "exactly one". */
export class AdjustDto {
  @Absentable()
  @IsInt()
  @NotEquals(0, { message: 'delta must not be 0' })
  @Min(-INT32_MAX)
  @Max(INT32_MAX)
  delta?: number;

  @Absentable()
  @IsInt()
  @Min(0)
  @Max(INT32_MAX)
  new_quota?: number;

  @Absentable()
  @IsIn(ADJUST_REASONS, { message: `reason must be one of ${ADJUST_REASONS.join(', ')}` })
  reason?: AdjustReason;

  @Absentable()
  @IsString()
  @MaxLength(NOTE_MAX_LENGTH)
  note?: string;
}

const MEMBER_ID_MESSAGE = 'member_id must be a member id (a string of digits)';

export class HistoryQuery {
  @Absentable()
  @IsString({ message: MEMBER_ID_MESSAGE })
  @Matches(ID_PATTERN, { message: MEMBER_ID_MESSAGE })
  member_id?: string;

  @Absentable()
  @IsIn(HISTORY_REASONS, { message: `reason must be one of ${HISTORY_REASONS.join(', ')}` })
  reason?: HistoryReason;

  @Absentable()
  @IsISO8601({ strict: true, strictSeparator: true }, { message: 'from must be an ISO-8601 timestamp' })
  from?: string;

  @Absentable()
  @IsISO8601({ strict: true, strictSeparator: true }, { message: 'to must be an ISO-8601 timestamp' })
  to?: string;

  @Absentable()
  @QueryInt()
  @IsInt()
  @Min(1)
  @Max(HISTORY_MAX_LIMIT)
  limit?: number;

  @Absentable()
  @IsString()
  @Matches(/^[A-Za-z0-9_-]{1,64}$/, { message: 'cursor must be a next_cursor value from an earlier page' })
  cursor?: string;
}

export class IntegrityQuery {
  @Absentable()
  @IsString({ message: MEMBER_ID_MESSAGE })
  @Matches(ID_PATTERN, { message: MEMBER_ID_MESSAGE })
  member_id?: string;
}
