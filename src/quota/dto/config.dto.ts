import { IsBoolean, IsIn, IsInt, IsOptional, IsString, Matches, Max, MaxLength, Min } from 'class-validator';
import { RESET_PERIODS, type ResetPeriod } from '../entities/quota-config.entity';
import { Absentable, INT32_MAX, MEMBERSHIP_TYPE_PATTERN, QueryBoolean } from './validation';

export const CONFIG_APPLY_MODES = ['next_reset', 'delta', 'reset'] as const;
export type ConfigApplyMode = (typeof CONFIG_APPLY_MODES)[number];

const SLUG_MESSAGE = 'membership_type must match ^[a-z0-9][a-z0-9_-]{0,31}$';

export class CreateConfigDto {
  @IsString({ message: SLUG_MESSAGE })
  @Matches(MEMBERSHIP_TYPE_PATTERN, { message: SLUG_MESSAGE })
  membership_type!: string;

  @IsInt()
  @Min(0)
  @Max(INT32_MAX)
  max_quota!: number;

  @Absentable()
  @IsIn(RESET_PERIODS, { message: `reset_period must be one of ${RESET_PERIODS.join(', ')}` })
  reset_period?: ResetPeriod;

  @Absentable()
  @IsBoolean()
  is_active?: boolean;

  @IsOptional()
  @IsString()
  @MaxLength(500)
  description?: string | null;
}

export class UpdateConfigDto {
  @Absentable()
  @IsInt()
  @Min(0)
  @Max(INT32_MAX)
  max_quota?: number;

  @Absentable()
  @IsIn(RESET_PERIODS, { message: `reset_period must be one of ${RESET_PERIODS.join(', ')}` })
  reset_period?: ResetPeriod;

  @Absentable()
  @IsBoolean()
  is_active?: boolean;

  @IsOptional()
  @IsString()
  @MaxLength(500)
  description?: string | null;

  @Absentable()
  @IsIn(CONFIG_APPLY_MODES, { message: `apply must be one of ${CONFIG_APPLY_MODES.join(', ')}` })
  apply?: ConfigApplyMode;
}

export class ListConfigsQuery {
  @Absentable()
  @QueryBoolean()
  @IsBoolean({ message: 'is_active must be true or false' })
  is_active?: boolean;
}
