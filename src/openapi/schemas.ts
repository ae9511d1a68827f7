import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { ROLES, type Role } from '../auth/principal';
import { RESET_PERIODS, type ResetPeriod } from '../quota/entities/quota-config.entity';
import { HISTORY_REASONS, type HistoryReason } from '../quota/entities/quota-history.entity';

/*
 * Response bodies as the API sends them. These classes exist only for the OpenAPI document: the
 * services build plain objects (see quota.views.ts, user.view.ts), and the conformance suite
 * checks real responses against these schemas so the two cannot drift apart unnoticed.
 */

const ID = { type: String, pattern: '^[1-9][0-9]{0,18}$', example: '42' } as const;
const TIMESTAMP = { type: String, format: 'date-time', example: '2025-01-31T12:00:00.000Z' } as const;
const INT32 = { type: 'integer', format: 'int32' } as const;
const SLUG = { type: String, pattern: '^[a-z0-9][a-z0-9_-]{0,31}$', example: 'regular' } as const;

@ApiSchema({ name: 'User' })
export class UserSchema {
  @ApiProperty(ID) id!: string;
  @ApiProperty({ type: String, format: 'email', example: 'ops@example.com' }) email!: string;
  @ApiProperty({ enum: ROLES, enumName: 'Role' }) role!: Role;
  @ApiProperty({ ...ID, nullable: true, description: 'The member a `member` user acts as; null for other roles.' })
  member_id!: string | null;
  @ApiProperty({ type: Boolean }) is_active!: boolean;
  @ApiProperty(TIMESTAMP) created_at!: string;
  @ApiProperty(TIMESTAMP) updated_at!: string;
}

@ApiSchema({ name: 'LoginResult' })
export class LoginResultSchema {
  @ApiProperty({ type: String, description: 'A JWT to send as `Authorization: Bearer <token>`.' })
  access_token!: string;
  @ApiProperty({ type: String, enum: ['Bearer'] }) token_type!: 'Bearer';
  @ApiProperty({ ...INT32, description: 'Seconds until the token expires.', example: 3600 }) expires_in!: number;
  @ApiProperty({ type: () => UserSchema }) user!: UserSchema;
}

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
  @ApiProperty({ ...INT32, minimum: 0, example: 42 }) balance!: number;
  @ApiProperty({ ...INT32, minimum: 0, example: 50 }) max_quota!: number;
  @ApiProperty({ enum: RESET_PERIODS, enumName: 'ResetPeriod' }) reset_period!: ResetPeriod;
  @ApiProperty({ ...TIMESTAMP, nullable: true }) period_started_at!: string | null;
  @ApiProperty({ ...TIMESTAMP, nullable: true, description: 'Null when the type never resets.' })
  next_reset_at!: string | null;
  @ApiProperty({ type: Boolean }) is_active!: boolean;
  @ApiProperty({ type: Boolean, description: "Whether the membership type's config is active." })
  config_active!: boolean;
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

@ApiSchema({ name: 'IntegrityReport', description: 'Members whose balance differs from the sum of their ledger.' })
export class IntegrityReportSchema {
  @ApiProperty({ type: 'integer', minimum: 0, description: 'Members checked.' }) checked!: number;
  @ApiProperty({ type: () => [LedgerMismatchSchema], description: 'At most 1000 are listed; there should be none.' })
  mismatches!: LedgerMismatchSchema[];
}

@ApiSchema({ name: 'PageMeta', description: 'Offset pagination.' })
export class PageMetaSchema {
  @ApiProperty({ type: 'integer', minimum: 1, example: 1 }) page!: number;
  @ApiProperty({ type: 'integer', minimum: 0, example: 20 }) per_page!: number;
  @ApiProperty({ type: 'integer', minimum: 0, example: 125 }) total!: number;
}

@ApiSchema({ name: 'CursorMeta', description: 'Keyset pagination: pass next_cursor as `cursor` for the next page.' })
export class CursorMetaSchema {
  @ApiProperty({ type: 'integer', minimum: 1, example: 50 }) limit!: number;
  @ApiProperty({ type: String, nullable: true, description: 'Null on the last page.' }) next_cursor!: string | null;
}

@ApiSchema({ name: 'BatchMeta' })
export class BatchMetaSchema {
  @ApiProperty({ type: 'integer', minimum: 1 }) created!: number;
}

@ApiSchema({ name: 'SeedHealth', description: "The seed system's health body, kept for its monitors." })
export class SeedHealthSchema {
  @ApiProperty({ enum: ['healthy', 'unhealthy'] }) status!: 'healthy' | 'unhealthy';
  @ApiProperty(TIMESTAMP) timestamp!: string;
  @ApiProperty({ enum: ['connected', 'disconnected'] }) database!: 'connected' | 'disconnected';
  @ApiProperty({ enum: ['operational', 'degraded'] }) quota_system!: 'operational' | 'degraded';
  @ApiProperty({
    type: 'object',
    additionalProperties: true,
    description: 'Each check (database, migrations, redis when configured, lifecycle) with its status.',
  })
  details!: Record<string, unknown>;
}

@ApiSchema({ name: 'Liveness' })
export class LivenessSchema {
  @ApiProperty({ type: String, enum: ['ok'] }) status!: 'ok';
  @ApiProperty({ type: 'integer', minimum: 0 }) uptime_seconds!: number;
}

@ApiSchema({ name: 'Readiness', description: 'A @nestjs/terminus health check result.' })
export class ReadinessSchema {
  @ApiProperty({ enum: ['ok', 'error', 'shutting_down'] }) status!: string;
  @ApiPropertyOptional({ type: 'object', additionalProperties: true }) info?: Record<string, unknown>;
  @ApiPropertyOptional({ type: 'object', additionalProperties: true }) error?: Record<string, unknown>;
  @ApiPropertyOptional({ type: 'object', additionalProperties: true }) details?: Record<string, unknown>;
}

export const RESPONSE_MODELS = [
  UserSchema,
  LoginResultSchema,
  QuotaConfigSchema,
  ConfigChangeMetaSchema,
  MemberSchema,
  BalanceSchema,
  QuotaChangeSchema,
  AdjustmentSchema,
  HistoryEntrySchema,
  LedgerMismatchSchema,
  IntegrityReportSchema,
  PageMetaSchema,
  CursorMetaSchema,
  BatchMetaSchema,
  SeedHealthSchema,
  LivenessSchema,
  ReadinessSchema,
];
