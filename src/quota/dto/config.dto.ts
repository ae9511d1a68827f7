import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsBoolean, IsIn, IsInt, IsOptional, IsString, Matches, Max, MaxLength, Min } from 'class-validator';
import { RESET_PERIODS, type ResetPeriod } from '../entities/quota-config.entity';
import { Absentable, INT32_MAX, MEMBERSHIP_TYPE_PATTERN, QueryBoolean } from './validation';

export const CONFIG_APPLY_MODES = ['next_reset', 'delta', 'reset'] as const;
export type ConfigApplyMode = (typeof CONFIG_APPLY_MODES)[number];

const SLUG_MESSAGE = 'membership_type must match ^[a-z0-9][a-z0-9_-]{0,31}$';

export class CreateConfigDto {
  @ApiProperty({ type: String, pattern: MEMBERSHIP_TYPE_PATTERN.source, example: 'regular' })
  @IsString({ message: SLUG_MESSAGE })
  @Matches(MEMBERSHIP_TYPE_PATTERN, { message: SLUG_MESSAGE })
  membership_type!: string;

  @ApiProperty({ type: 'integer', minimum: 0, maximum: INT32_MAX, example: 50 })
  @IsInt()
  @Min(0)
  @Max(INT32_MAX)
  max_quota!: number;

  @ApiPropertyOptional({ enum: RESET_PERIODS, enumName: 'ResetPeriod', default: 'none' })
  @Absentable()
  @IsIn(RESET_PERIODS, { message: `reset_period must be one of ${RESET_PERIODS.join(', ')}` })
  reset_period?: ResetPeriod;

  @ApiPropertyOptional({ type: Boolean, default: true })
  @Absentable()
  @IsBoolean()
  is_active?: boolean;

  @ApiPropertyOptional({ type: String, nullable: true, maxLength: 500 })
  @IsOptional()
  @IsString()
  @MaxLength(500)
  description?: string | null;
}

export class UpdateConfigDto {
  @ApiPropertyOptional({ type: 'integer', minimum: 0, maximum: INT32_MAX })
  @Absentable()
  @IsInt()
  @Min(0)
  @Max(INT32_MAX)
  max_quota?: number;

  @ApiPropertyOptional({ enum: RESET_PERIODS, enumName: 'ResetPeriod' })
  @Absentable()
  @IsIn(RESET_PERIODS, { message: `reset_period must be one of ${RESET_PERIODS.join(', ')}` })
  reset_period?: ResetPeriod;

  @ApiPropertyOptional({ type: Boolean })
  @Absentable()
  @IsBoolean()
  is_active?: boolean;

  @ApiPropertyOptional({ type: String, nullable: true, maxLength: 500 })
  @IsOptional()
  @IsString()
  @MaxLength(500)
  description?: string | null;

  @ApiPropertyOptional({
    enum: CONFIG_APPLY_MODES,
    default: 'next_reset',
    description:
      'How members of the type get a new max_quota: at their next reset, shifted by the difference (delta, ' +
      'floored at 0) or set to the new max (reset); delta and reset run as a background operation.',
  })
  @Absentable()
  @IsIn(CONFIG_APPLY_MODES, { message: `apply must be one of ${CONFIG_APPLY_MODES.join(', ')}` })
  apply?: ConfigApplyMode;
}

export class ListConfigsQuery {
  @ApiPropertyOptional({ type: Boolean })
  @Absentable()
  @QueryBoolean()
  @IsBoolean({ message: 'is_active must be true or false' })
  is_active?: boolean;
}
