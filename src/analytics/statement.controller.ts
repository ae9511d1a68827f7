import { Controller, Get, Param, Query } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { Roles } from '../auth/decorators';
import { ApiDataResponse } from '../openapi/decorators';
import { ApiProblems } from '../openapi/problems';
import { MemberIdPipe } from '../quota/member-id.pipe';
import { StatementQuery } from './statement.dto';
import { StatementSchema } from './statement.schemas';
import { StatementService } from './statement.service';

@ApiTags('ledger')
@Controller('admin/quota')
@Roles('admin', 'operator')
export class StatementController {
  constructor(private readonly statements: StatementService) {}

  @Get('members/:id/statement')
  @ApiOperation({
    summary:
      "A member's statement over a window of its ledger: opening and closing balance, held units and totals per reason",
  })
  @ApiDataResponse(StatementSchema)
  @ApiProblems('not_found', 'validation_failed')
  async statement(@Param('id', MemberIdPipe) id: string, @Query() query: StatementQuery) {
    const statement = await this.statements.statement(id, { from: query.from, to: query.to });
    return {
      data: {
        member_id: statement.memberId,
        from: statement.from.toISOString(),
        to: statement.to.toISOString(),
        opening_balance: statement.openingBalance,
        closing_balance: statement.closingBalance,
        held: statement.held,
        totals: Object.fromEntries(statement.totals),
      },
    };
  }
}
