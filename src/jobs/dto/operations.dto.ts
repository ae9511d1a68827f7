import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsBoolean,
  IsIn,
  IsInt,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
  NotEquals,
  Validate,
  ValidatorConstraint,
  type ValidatorConstraintInterface,
} from 'class-validator';
import type { HistoryReason } from '../../quota/entities/quota-history.entity';
import {
  Absentable,
  ID_PATTERN,
  INT32_MAX,
  MEMBERSHIP_TYPE_PATTERN,
  NOTE_MAX_LENGTH,
  QueryInt,
} from '../../quota/dto/validation';
import { OPERATION_KINDS, OPERATION_STATUSES, type OperationStatus } from '../operation.view';
import type { OperationKind } from '../../quota/ledger-bulk.service';

export const MAX_BULK_MEMBER_IDS = 100_000;
export const BULK_REASONS = ['bulk_adjustment', 'manual_adjustment', 'refund', 'config_change'] as const;
export type BulkReason = (typeof BULK_REASONS)[number] & HistoryReason;
export const OPERATIONS_MAX_PER_PAGE = 100;

@ValidatorConstraint({ name: 'memberIdList' })
class MemberIdList implements ValidatorConstraintInterface {
  validate(value: unknown): boolean {
    if (!Array.isArray(value)) return false;
    for (const id of value) {
      if (typeof id === 'number') {
        if (!Number.isSafeInteger(id) || id < 1) return false;
      } else if (typeof id !== 'string' || !ID_PATTERN.test(id)) return false;
    }
    return true;
  }

  defaultMessage(): string {
    return 'each member id must be a positive integer or a string of digits';
  }
}

/** Exactly one of member_ids and membership_type, and of new_quota and delta; the service checks the "exactly one". */
export class BulkAdjustDto {
  @ApiPropertyOptional({
    description: `Members to adjust (at most ${MAX_BULK_MEMBER_IDS}; duplicates are merged): ids as strings of digits or as integers`,
    type: 'array',
    items: {
      anyOf: [
        { type: 'string', pattern: ID_PATTERN.source },
        { type: 'integer', minimum: 1 },
      ],
    },
    minItems: 1,
    maxItems: MAX_BULK_MEMBER_IDS,
    example: ['1', '2', '3'],
  })
  @Absentable()
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(MAX_BULK_MEMBER_IDS, { message: `member_ids must contain at most ${MAX_BULK_MEMBER_IDS} ids` })
  @Validate(MemberIdList)
  member_ids?: (number | string)[];

  @ApiPropertyOptional({
    description: 'Every member of this type',
    type: String,
    pattern: MEMBERSHIP_TYPE_PATTERN.source,
    example: 'regular',
  })
  @Absentable()
  @IsString()
  @Matches(MEMBERSHIP_TYPE_PATTERN, { message: 'membership_type must match ^[a-z0-9][a-z0-9_-]{0,31}$' })
  membership_type?: string;

  @ApiPropertyOptional({
    description: 'Set every selected balance to this value',
    type: 'integer',
    minimum: 0,
    maximum: INT32_MAX,
  })
  @Absentable()
  @IsInt()
  @Min(0)
  @Max(INT32_MAX)
  new_quota?: number;

  @ApiPropertyOptional({
    description: 'Shift every selected balance by this amount (floored at 0)',
    type: 'integer',
    minimum: -INT32_MAX,
    maximum: INT32_MAX,
    not: { enum: [0] },
    example: 10,
  })
  @Absentable()
  @IsInt()
  @NotEquals(0, { message: 'delta must not be 0' })
  @Min(-INT32_MAX)
  @Max(INT32_MAX)
  delta?: number;

  @ApiPropertyOptional({ enum: BULK_REASONS, enumName: 'BulkReason', default: 'bulk_adjustment' })
  @Absentable()
  @IsIn(BULK_REASONS, { message: `reason must be one of ${BULK_REASONS.join(', ')}` })
  reason?: BulkReason;

  @ApiPropertyOptional({ type: String, maxLength: NOTE_MAX_LENGTH })
  @Absentable()
  @IsString()
  @MaxLength(NOTE_MAX_LENGTH)
  note?: string;

  @ApiPropertyOptional({
    description: 'Answer what would change without changing or queueing anything',
    type: Boolean,
    default: false,
  })
  @Absentable()
  @IsBoolean()
  dry_run?: boolean;
}

export class ListOperationsQuery {
  @ApiPropertyOptional({ enum: OPERATION_STATUSES, enumName: 'OperationStatus' })
  @Absentable()
  @IsIn(OPERATION_STATUSES, { message: `status must be one of ${OPERATION_STATUSES.join(', ')}` })
  status?: OperationStatus;

  @ApiPropertyOptional({ enum: OPERATION_KINDS, enumName: 'OperationKind' })
  @Absentable()
  @IsIn(OPERATION_KINDS, { message: `kind must be one of ${OPERATION_KINDS.join(', ')}` })
  kind?: OperationKind;

  @ApiPropertyOptional({ type: 'integer', minimum: 1, default: 1 })
  @Absentable()
  @QueryInt()
  @IsInt()
  @Min(1)
  page?: number;

  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: OPERATIONS_MAX_PER_PAGE, default: 20 })
  @Absentable()
  @QueryInt()
  @IsInt()
  @Min(1)
  @Max(OPERATIONS_MAX_PER_PAGE)
  per_page?: number;
}

export class BulkAdjustAcceptedDto {
  @ApiProperty({ type: String, pattern: ID_PATTERN.source, example: '42' })
  operation_id!: string;

  @ApiProperty({ type: String, enum: ['queued'], example: 'queued' })
  status!: string;

  @ApiProperty({ type: 'integer', minimum: 1, description: 'Distinct selected members', example: 1500 })
  total!: number;
}

@ApiSchema({ name: 'BulkAdjustAccepted' })
export class BulkAdjustAcceptedSchema {
  @ApiProperty({ type: BulkAdjustAcceptedDto }) data!: BulkAdjustAcceptedDto;
  @ApiProperty({ type: String, example: 'Bulk adjustment queued for processing' }) message!: string;
}

@ApiSchema({ name: 'BulkAdjustDryRun' })
export class BulkAdjustDryRunSchema {
  @ApiProperty({ type: Boolean, example: true }) dry_run!: boolean;
  @ApiProperty({ type: 'integer', description: 'Distinct selected members' }) total!: number;
  @ApiProperty({ type: 'integer', description: 'Members whose balance would change' }) would_change!: number;
  @ApiProperty({ type: 'integer' }) unchanged!: number;
}

@ApiSchema({ name: 'QuotaOperation', description: 'A background operation and its progress.' })
export class OperationSchema {
  @ApiProperty({ type: String, example: '42' }) id!: string;
  @ApiProperty({ enum: OPERATION_KINDS, enumName: 'OperationKind' }) kind!: string;
  @ApiProperty({ enum: OPERATION_STATUSES, enumName: 'OperationStatus' }) status!: string;
  @ApiProperty({
    type: 'object',
    description: '`{"membership_type": "..."}` or `{"member_ids": <count>}`',
    additionalProperties: true,
  })
  selection!: Record<string, unknown>;
  @ApiProperty({ type: 'object', description: '`{"delta": n}` or `{"new_quota": n}`', additionalProperties: true })
  change!: Record<string, unknown>;
  @ApiProperty({ type: String }) reason!: string;
  @ApiProperty({ type: String, nullable: true }) note!: string | null;
  @ApiProperty({ type: 'integer' }) total!: number;
  @ApiProperty({ type: 'integer' }) processed!: number;
  @ApiProperty({ type: 'integer', description: 'Members whose balance changed' }) changed!: number;
  @ApiProperty({ type: 'integer', description: 'Members not applied when the operation failed' }) failed!: number;
  @ApiProperty({ type: String, description: 'User id, or "system"' }) requested_by!: string;
  @ApiProperty({ type: String, nullable: true }) config_id!: string | null;
  @ApiProperty({ type: String, nullable: true, description: 'Periodic resets: the period' }) period_key!: string | null;
  @ApiProperty({ type: Boolean }) cancel_requested!: boolean;
  @ApiProperty({ type: String, nullable: true }) error!: string | null;
  @ApiProperty({ type: String, format: 'date-time' }) created_at!: string;
  @ApiProperty({ type: String, format: 'date-time' }) updated_at!: string;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) started_at!: string | null;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) finished_at!: string | null;
}
