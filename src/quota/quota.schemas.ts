import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { ID, TIMESTAMP, INT32, SLUG } from '../openapi/schemas';
import { RESET_PERIODS, type ResetPeriod } from './entities/quota-config.entity';
import { HISTORY_REASONS, type HistoryReason } from './entities/quota-history.entity';

/** The quota module's response bodies, for the OpenAPI document (see openapi/schemas.ts). */
@ApiSchema({ name: 'QuotaConfig' })
export class QuotaConfigSchema {
  @ApiProperty(ID) id!: string;
  @ApiProperty(SLUG) membership_type!: string;
  @ApiProperty({ ...INT32, minimum: 0, example: 50 }) max_quota!: number;
  @ApiProperty({ enum: RESET_PERIODS, enumName: 'ResetPeriod' }) reset_period!: ResetPeriod;
  @ApiProperty({ type: Boolean }) is_active!: boolean;
  @ApiProperty({ type: String, nullable: true, maxLength: 500 }) description!: string | null;
  @ApiProperty(TIMESTAMP) created_at!: string;
  @ApiProperty(TIMESTAMP) updated_at!: string;
}

@ApiSchema({
  name: 'ConfigChangeMeta',
  description: 'Sent when `apply` is `delta` or `reset`: the background operation that updates the members.',
})
export class ConfigChangeMetaSchema {
  @ApiProperty({ ...ID, description: 'Follow it at GET /api/v1/admin/quota/operations/{id}.' }) operation_id!: string;
}

@ApiSchema({ name: 'Member' })
export class MemberSchema {
  @ApiProperty(ID) id!: string;
  @ApiProperty({ type: String, description: "The host platform's member key.", example: 'user-1001' })
  external_id!: string;
  @ApiProperty(SLUG) membership_type!: string;
  @ApiProperty({ ...INT32, minimum: 0, example: 50 }) quota_balance!: number;
  @ApiProperty({ type: Boolean }) is_active!: boolean;
  @ApiProperty({ ...TIMESTAMP, nullable: true }) period_started_at!: string | null;
  @ApiProperty(TIMESTAMP) created_at!: string;
  @ApiProperty(TIMESTAMP) updated_at!: string;
}

@ApiSchema({ name: 'Balance', description: "A member's quota as the consumption API shows it." })
export class BalanceSchema {
  @ApiProperty(ID) member_id!: string;
  @ApiProperty({ type: String, example: 'user-1001' }) external_id!: string;
  @ApiProperty(SLUG) membership_type!: string;
  @ApiProperty({ ...INT32, minimum: 0, example: 42, description: 'Now, or at `as_of` when `at` was given.' })
  balance!: number;
  @ApiProperty({
    ...INT32,
    minimum: 0,
    example: 0,
    description: "Units in the member's open holds (at `as_of` when `at` was given), not part of `balance`.",
  })
  held!: number;
  @ApiProperty({ ...INT32, minimum: 0, example: 50 }) max_quota!: number;
  @ApiProperty({ enum: RESET_PERIODS, enumName: 'ResetPeriod' }) reset_period!: ResetPeriod;
  @ApiProperty({ ...TIMESTAMP, nullable: true }) period_started_at!: string | null;
  @ApiProperty({ ...TIMESTAMP, nullable: true, description: 'Null when the type never resets.' })
  next_reset_at!: string | null;
  @ApiProperty({ type: Boolean }) is_active!: boolean;
  @ApiProperty({ type: Boolean, description: "Whether the membership type's config is active." })
  config_active!: boolean;
  @ApiPropertyOptional({
    ...TIMESTAMP,
    description: 'The instant `at` asked for; only `balance` and `held` are as of then, the rest is now.',
  })
  as_of?: string;
}

@ApiSchema({ name: 'QuotaChange', description: 'The result of a consume or refund.' })
export class QuotaChangeSchema {
  @ApiProperty(ID) member_id!: string;
  @ApiProperty({ ...INT32, minimum: 1, example: 1 }) amount!: number;
  @ApiProperty({ ...INT32, minimum: 0, description: 'The balance after the change.', example: 41 }) balance!: number;
  @ApiProperty({ ...ID, description: 'The ledger row this change wrote.' }) history_id!: string;
}

@ApiSchema({ name: 'Adjustment', description: 'The result of a manual adjustment.' })
export class AdjustmentSchema {
  @ApiProperty(ID) member_id!: string;
  @ApiProperty({ ...INT32, description: 'The signed change applied.' }) delta!: number;
  @ApiProperty({ ...INT32, minimum: 0, description: 'The balance after the change.' }) balance!: number;
  @ApiProperty({ enum: HISTORY_REASONS, enumName: 'HistoryReason' }) reason!: HistoryReason;
  @ApiProperty({ ...ID, description: 'The ledger row this change wrote.' }) history_id!: string;
}

@ApiSchema({ name: 'HistoryEntry', description: 'One row of the append-only quota ledger.' })
export class HistoryEntrySchema {
  @ApiProperty(ID) id!: string;
  @ApiProperty(ID) member_id!: string;
  @ApiProperty({ ...INT32, example: -1 }) delta!: number;
  @ApiProperty({ ...INT32, minimum: 0, example: 41 }) balance_after!: number;
  @ApiProperty({ enum: HISTORY_REASONS, enumName: 'HistoryReason' }) reason!: HistoryReason;
  @ApiProperty({ type: String, description: 'A user id, or `system`.', example: '7' }) actor!: string;
  @ApiProperty({ ...ID, nullable: true, description: 'The bulk, reset or config operation, if any.' })
  operation_id!: string | null;
  @ApiProperty({ type: String, nullable: true }) note!: string | null;
  @ApiProperty(TIMESTAMP) created_at!: string;
}

@ApiSchema({ name: 'LedgerMismatch' })
export class LedgerMismatchSchema {
  @ApiProperty(ID) member_id!: string;
  @ApiProperty({ type: 'integer' }) balance!: number;
  @ApiProperty({ type: 'integer' }) ledger_sum!: number;
}

@ApiSchema({ name: 'HeldMismatch' })
export class HeldMismatchSchema {
  @ApiProperty(ID) member_id!: string;
  @ApiProperty({ type: 'integer', description: 'members.quota_held' }) held!: number;
  @ApiProperty({ type: 'integer', description: 'The units of its open holds.' }) open_holds!: number;
}

@ApiSchema({
  name: 'IntegrityReport',
  description: 'Members whose balance differs from the sum of their ledger, or whose held units from their open holds.',
})
export class IntegrityReportSchema {
  @ApiProperty({ type: 'integer', minimum: 0, description: 'Members checked.' }) checked!: number;
  @ApiProperty({ type: () => [LedgerMismatchSchema], description: 'At most 1000 are listed; there should be none.' })
  mismatches!: LedgerMismatchSchema[];
  @ApiProperty({ type: () => [HeldMismatchSchema], description: 'At most 1000 are listed; there should be none.' })
  held_mismatches!: HeldMismatchSchema[];
}

export const QUOTA_RESPONSE_MODELS = [
  QuotaConfigSchema,
  ConfigChangeMetaSchema,
  MemberSchema,
  BalanceSchema,
  QuotaChangeSchema,
  AdjustmentSchema,
  HistoryEntrySchema,
  LedgerMismatchSchema,
  HeldMismatchSchema,
  IntegrityReportSchema,
];
