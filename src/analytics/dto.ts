import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsBoolean, IsIn, IsInt, IsISO8601, IsString, Matches, Max, Min } from 'class-validator';
import { Absentable, ID_PATTERN, MEMBERSHIP_TYPE_PATTERN, QueryBoolean, QueryInt } from '../quota/dto/validation';
import { ANOMALY_KINDS, type AnomalyKind } from './anomaly-detector';

const SLUG_MESSAGE = 'membership_type must match ^[a-z0-9][a-z0-9_-]{0,31}$';
const ISO = { strict: true, strictSeparator: true } as const;
export const ANOMALIES_MAX_LIMIT = 500;
export const ANOMALIES_DEFAULT_LIMIT = 50;

export class StatsQuery {
  @ApiPropertyOptional({ type: String, pattern: MEMBERSHIP_TYPE_PATTERN.source, example: 'regular' })
  @Absentable()
  @IsString({ message: SLUG_MESSAGE })
  @Matches(MEMBERSHIP_TYPE_PATTERN, { message: SLUG_MESSAGE })
  membership_type?: string;

  @ApiPropertyOptional({
    type: String,
    format: 'date-time',
    description: 'Window start (inclusive); default: to − 30 days.',
  })
  @Absentable()
  @IsISO8601(ISO, { message: 'from must be an ISO-8601 timestamp' })
  from?: string;

  @ApiPropertyOptional({ type: String, format: 'date-time', description: 'Window end (exclusive); default: now.' })
  @Absentable()
  @IsISO8601(ISO, { message: 'to must be an ISO-8601 timestamp' })
  to?: string;

  @ApiPropertyOptional({ type: Boolean, default: false, description: 'true: recompute and refresh the cache.' })
  @Absentable()
  @QueryBoolean()
  @IsBoolean({ message: 'fresh must be true or false' })
  fresh?: boolean;
}

export class AnomaliesQuery {
  @ApiPropertyOptional({
    type: String,
    format: 'date-time',
    description: 'Only anomalies detected at or after this time.',
  })
  @Absentable()
  @IsISO8601(ISO, { message: 'since must be an ISO-8601 timestamp' })
  since?: string;

  @ApiPropertyOptional({ enum: ANOMALY_KINDS, enumName: 'AnomalyKind' })
  @Absentable()
  @IsIn(ANOMALY_KINDS, { message: `kind must be one of ${ANOMALY_KINDS.join(', ')}` })
  kind?: AnomalyKind;

  @ApiPropertyOptional({ type: String, pattern: ID_PATTERN.source })
  @Absentable()
  @IsString({ message: 'member_id must be a member id (a string of digits)' })
  @Matches(ID_PATTERN, { message: 'member_id must be a member id (a string of digits)' })
  member_id?: string;

  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: ANOMALIES_MAX_LIMIT, default: ANOMALIES_DEFAULT_LIMIT })
  @Absentable()
  @QueryInt()
  @IsInt()
  @Min(1)
  @Max(ANOMALIES_MAX_LIMIT)
  limit?: number;

  @ApiPropertyOptional({ type: String, description: 'next_cursor of the previous page.' })
  @Absentable()
  @IsString()
  @Matches(/^[A-Za-z0-9_-]{1,64}$/, { message: 'cursor must be a next_cursor value from an earlier page' })
  cursor?: string;
}

export class ReasonStatsView {
  @ApiProperty({ type: 'integer' }) count!: number;
  @ApiProperty({ type: 'integer', description: 'Sum of |delta|.' }) units!: number;
  @ApiProperty({ type: 'integer', description: 'Sum of delta.' }) net_delta!: number;
}

export class ConsumptionView {
  @ApiProperty({ type: 'integer', description: 'Consumption rows in the window.' }) count!: number;
  @ApiProperty({ type: 'integer', description: 'Units consumed in the window.' }) units!: number;
}

export class TypeStatsView {
  @ApiProperty({ type: String }) membership_type!: string;
  @ApiProperty({ type: Boolean, description: 'false for a type whose config was deleted but appears in the window.' })
  configured!: boolean;
  @ApiProperty({ type: 'integer', nullable: true }) max_quota!: number | null;
  @ApiProperty({ type: Boolean, nullable: true }) is_active!: boolean | null;
  @ApiProperty({ type: 'integer' }) members!: number;
  @ApiProperty({ type: 'integer' }) total_balance!: number;
  @ApiProperty({ type: 'integer', nullable: true, description: 'members × max_quota' }) total_max_quota!: number | null;
  @ApiProperty({ type: Number, nullable: true, description: '1 − total_balance / total_max_quota' })
  utilisation!: number | null;
  @ApiProperty({ type: ConsumptionView }) consumption!: ConsumptionView;
  @ApiProperty({ type: 'integer', description: 'History rows in the window.' }) history_rows!: number;
  @ApiProperty({ type: 'object', additionalProperties: { $ref: '#/components/schemas/ReasonStatsView' } })
  by_reason!: Record<string, ReasonStatsView>;
}

export class StatsWindowView {
  @ApiProperty({ type: String, format: 'date-time' }) from!: string;
  @ApiProperty({ type: String, format: 'date-time' }) to!: string;
}

export class StatsTotalsView {
  @ApiProperty({ type: 'integer' }) members!: number;
  @ApiProperty({ type: 'integer' }) total_balance!: number;
  @ApiProperty({ type: ConsumptionView }) consumption!: ConsumptionView;
  @ApiProperty({ type: 'integer' }) history_rows!: number;
  @ApiProperty({ type: 'object', additionalProperties: { $ref: '#/components/schemas/ReasonStatsView' } })
  by_reason!: Record<string, ReasonStatsView>;
}

export class StatsView {
  @ApiProperty({ type: StatsWindowView }) window!: StatsWindowView;
  @ApiProperty({ type: [TypeStatsView] }) membership_types!: TypeStatsView[];
  @ApiProperty({ type: StatsTotalsView }) totals!: StatsTotalsView;
  @ApiProperty({ type: String, description: 'Last ledger id folded into the rollups.' }) rollup_watermark!: string;
}

export class StatsMetaView {
  @ApiProperty({ type: Boolean }) cached!: boolean;
  @ApiProperty({ type: String, format: 'date-time' }) generated_at!: string;
  @ApiProperty({ type: 'integer' }) ttl_seconds!: number;
}

export class StatsResponse {
  @ApiProperty({ type: StatsView }) data!: StatsView;
  @ApiProperty({ type: StatsMetaView }) meta!: StatsMetaView;
}

export class AnomalyView {
  @ApiProperty({ type: String }) id!: string;
  @ApiProperty({ type: String }) member_id!: string;
  @ApiProperty({ type: String }) membership_type!: string;
  @ApiProperty({ enum: ANOMALY_KINDS, enumName: 'AnomalyKind' }) kind!: AnomalyKind;
  @ApiProperty({ type: String, format: 'date-time', description: 'Time of the ledger row that triggered it.' })
  occurred_at!: string;
  @ApiProperty({ type: String, format: 'date-time' }) detected_at!: string;
  @ApiProperty({ type: Number, description: 'Units in the window, consumes in the burst, or units used.' })
  observed!: number;
  @ApiProperty({ type: Number, nullable: true, description: 'Baseline, cohort mean or max_quota.' })
  expected!: number | null;
  @ApiProperty({ type: String, nullable: true }) detail!: string | null;
}

export class AnomaliesMetaView {
  @ApiProperty({ type: 'integer' }) limit!: number;
  @ApiProperty({ type: String, nullable: true }) next_cursor!: string | null;
}

export class AnomaliesResponse {
  @ApiProperty({ type: [AnomalyView] }) data!: AnomalyView[];
  @ApiProperty({ type: AnomaliesMetaView }) meta!: AnomaliesMetaView;
}
