import { ApiProperty, ApiSchema } from '@nestjs/swagger';
import { ID, INT32, TIMESTAMP } from '../openapi/schemas';
import { HOLD_STATUSES, type HoldStatus } from './entities/quota-hold.entity';

/** The holds' response bodies, for the OpenAPI document (see openapi/schemas.ts). */
@ApiSchema({
  name: 'Hold',
  description: 'Units reserved for a caller, settled later by commit or release, or given back at `expires_at`.',
})
export class HoldSchema {
  @ApiProperty(ID) hold_id!: string;
  @ApiProperty(ID) member_id!: string;
  @ApiProperty({ ...INT32, minimum: 1, example: 10, description: 'Units the hold took.' }) amount!: number;
  @ApiProperty({
    enum: HOLD_STATUSES,
    enumName: 'HoldStatus',
    description: 'An open hold past `expires_at` is `expired` at once, even before its units are back.',
  })
  status!: HoldStatus;
  @ApiProperty({ ...INT32, minimum: 0, nullable: true, description: 'Null while the hold is open.' })
  committed_amount!: number | null;
  @ApiProperty({ ...INT32, minimum: 0, nullable: true, description: 'Null while the hold is open.' })
  released_amount!: number | null;
  @ApiProperty({ type: String, nullable: true, maxLength: 500 }) note!: string | null;
  @ApiProperty(TIMESTAMP) created_at!: string;
  @ApiProperty(TIMESTAMP) expires_at!: string;
  @ApiProperty({ ...TIMESTAMP, nullable: true, description: 'When it was committed, released or expired.' })
  settled_at!: string | null;
}

@ApiSchema({
  name: 'HoldChange',
  description: 'A hold just made, committed or released, and what the member can still spend.',
})
export class HoldChangeSchema extends HoldSchema {
  @ApiProperty({ ...INT32, minimum: 0, example: 40, description: 'What the member can still spend.' })
  balance!: number;
}

export const HOLD_RESPONSE_MODELS = [HoldSchema, HoldChangeSchema];
