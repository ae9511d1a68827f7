import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { IsBoolean, IsString, MaxLength, ValidateIf } from 'class-validator';
import { TIMESTAMP } from '../openapi/schemas';

export const MAINTENANCE_REASON_MAX_LENGTH = 500;

export class MaintenanceChangeDto {
  @ApiProperty({ type: Boolean, description: 'true freezes every write on every instance; false lifts the freeze.' })
  @IsBoolean()
  read_only!: boolean;

  @ApiPropertyOptional({
    type: String,
    maxLength: MAINTENANCE_REASON_MAX_LENGTH,
    description: 'Why, shown by GET and /api/v1/health. Kept when freezing again without one; cleared when lifted.',
  })
  // Absent is fine; an explicit null is refused like any non-string.
  @ValidateIf((_object, value) => value !== undefined)
  @IsString()
  @MaxLength(MAINTENANCE_REASON_MAX_LENGTH)
  reason?: string;
}

@ApiSchema({ name: 'MaintenanceState', description: 'The write freeze switch (maintenance mode).' })
export class MaintenanceStateSchema {
  @ApiProperty({ type: Boolean, description: 'While true every endpoint that changes data answers 503 read_only.' })
  read_only!: boolean;
  @ApiProperty({ type: String, nullable: true, maxLength: MAINTENANCE_REASON_MAX_LENGTH }) reason!: string | null;
  @ApiProperty({ ...TIMESTAMP, nullable: true, description: 'When the current state began; null if never changed.' })
  since!: string | null;
  @ApiProperty({
    type: String,
    nullable: true,
    description: 'Who made the last change: a user email, or `system (cli)`.',
  })
  by!: string | null;
}
