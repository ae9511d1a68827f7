import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsInt, IsString, Matches, Max, MaxLength, Min } from 'class-validator';
import { OptionalBody } from '../../common/body-parsing';
import { HOLD_STATUSES, type HoldStatus } from '../entities/quota-hold.entity';
import { HOLD_TTL_DEFAULT_SECONDS, HOLD_TTL_MAX_SECONDS } from '../holds.service';
import { CursorPageQuery } from './quota.dto';
import { Absentable, ID_PATTERN, INT32_MAX, NOTE_MAX_LENGTH } from './validation';

export class NewHoldDto {
  @ApiProperty({ type: 'integer', minimum: 1, maximum: INT32_MAX, example: 10 })
  @IsInt()
  @Min(1)
  @Max(INT32_MAX)
  amount!: number;

  @ApiPropertyOptional({
    type: 'integer',
    minimum: 1,
    maximum: HOLD_TTL_MAX_SECONDS,
    default: HOLD_TTL_DEFAULT_SECONDS,
    description: 'Seconds until an unsettled hold gives its units back by itself.',
  })
  @Absentable()
  @IsInt()
  @Min(1)
  @Max(HOLD_TTL_MAX_SECONDS)
  ttl_seconds?: number;

  @ApiPropertyOptional({ type: String, maxLength: NOTE_MAX_LENGTH })
  @Absentable()
  @IsString()
  @MaxLength(NOTE_MAX_LENGTH)
  note?: string;
}

/** Every field is optional, so an empty body commits the whole hold. */
@OptionalBody()
export class CommitHoldDto {
  @ApiPropertyOptional({
    type: 'integer',
    minimum: 0,
    maximum: INT32_MAX,
    description: "Units to commit, at most the hold's amount; the whole hold when absent. The rest is given back.",
  })
  @Absentable()
  @IsInt()
  @Min(0)
  @Max(INT32_MAX)
  amount?: number;
}

const MEMBER_ID_MESSAGE = 'member_id must be a member id (a string of digits)';

export class OwnHoldsQuery extends CursorPageQuery {
  @ApiPropertyOptional({ enum: HOLD_STATUSES, enumName: 'HoldStatus' })
  @Absentable()
  @IsIn(HOLD_STATUSES, { message: `status must be one of ${HOLD_STATUSES.join(', ')}` })
  status?: HoldStatus;
}

export class HoldsQuery extends OwnHoldsQuery {
  @ApiPropertyOptional({ type: String, pattern: ID_PATTERN.source })
  @Absentable()
  @IsString({ message: MEMBER_ID_MESSAGE })
  @Matches(ID_PATTERN, { message: MEMBER_ID_MESSAGE })
  member_id?: string;
}
