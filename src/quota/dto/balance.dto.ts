import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsISO8601 } from 'class-validator';
import { Absentable } from './validation';

const ISO = { strict: true, strictSeparator: true } as const;

export class BalanceQuery {
  @ApiPropertyOptional({
    type: String,
    format: 'date-time',
    description:
      'The balance as it stood at this instant, from the ledger (`as_of` in the answer). A future instant is 422; ' +
      "one before the member's first ledger row is 404.",
  })
  @Absentable()
  @IsISO8601(ISO, { message: 'at must be an ISO-8601 timestamp' })
  at?: string;
}
