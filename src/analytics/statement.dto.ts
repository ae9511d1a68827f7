import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsISO8601 } from 'class-validator';
import { Absentable } from '../quota/dto/validation';

const ISO = { strict: true, strictSeparator: true } as const;

export class StatementQuery {
  @ApiPropertyOptional({
    type: String,
    format: 'date-time',
    description: "Rows created at or after this instant; the member's creation when absent.",
  })
  @Absentable()
  @IsISO8601(ISO, { message: 'from must be an ISO-8601 timestamp' })
  from?: string;

  @ApiPropertyOptional({
    type: String,
    format: 'date-time',
    description: 'Rows created at or before this instant; now when absent. A future instant is 422.',
  })
  @Absentable()
  @IsISO8601(ISO, { message: 'to must be an ISO-8601 timestamp' })
  to?: string;
}
