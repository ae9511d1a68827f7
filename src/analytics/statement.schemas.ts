import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';
import { ID, INT32, TIMESTAMP } from '../openapi/schemas';
import { HISTORY_REASONS, type HistoryReason } from '../quota/entities/quota-history.entity';

/** Response bodies of balances in time (see openapi/schemas.ts). */
@ApiSchema({ name: 'StatementTotal', description: 'The ledger rows of one reason in a statement window.' })
export class StatementTotalSchema {
  @ApiProperty({ type: 'integer', minimum: 1, example: 12 }) count!: number;
  @ApiProperty({ type: 'integer', description: 'The sum of their deltas (signed).', example: -37 }) units!: number;
}

@ApiSchema({
  name: 'StatementTotals',
  description: 'Per reason that has rows in the window: how many and their units; reasons without rows are absent.',
})
export class StatementTotalsSchema {}
// One optional member per ledger reason, so the list cannot fall behind HISTORY_REASONS.
for (const reason of HISTORY_REASONS) {
  ApiPropertyOptional({ type: () => StatementTotalSchema })(StatementTotalsSchema.prototype, reason);
}

@ApiSchema({
  name: 'Statement',
  description:
    "A member's account over a window [from, to] of the ledger: " +
    '`closing_balance = opening_balance + Σ totals[*].units`, exactly.',
})
export class StatementSchema {
  @ApiProperty(ID) member_id!: string;
  @ApiProperty({ ...TIMESTAMP, description: "The window's start (inclusive); the member's creation by default." })
  from!: string;
  @ApiProperty({ ...TIMESTAMP, description: "The window's end (inclusive); the time of the request by default." })
  to!: string;
  @ApiProperty({ ...INT32, minimum: 0, description: 'The balance just before `from` (0 before the first row).' })
  opening_balance!: number;
  @ApiProperty({ ...INT32, minimum: 0, description: 'The balance at `to`.' })
  closing_balance!: number;
  @ApiProperty({ ...INT32, minimum: 0, description: 'Units kept by the holds open at `to` (not in the balances).' })
  held!: number;
  @ApiProperty({ type: () => StatementTotalsSchema })
  totals!: Partial<Record<HistoryReason, StatementTotalSchema>>;
}
