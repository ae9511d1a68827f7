import { Body, Controller, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import type { HttpReply } from '../common/http';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal, Roles } from '../auth/decorators';
import { ApiCursorResponse, ApiDataResponse, ApiIdempotencyKey, REPLAY_HEADER } from '../openapi/decorators';
import { ApiProblems } from '../openapi/problems';
import { AdjustmentSchema, HistoryEntrySchema, IntegrityReportSchema } from './quota.schemas';
import type { Principal } from '../auth/principal';
import { AdjustDto, PAGE_DEFAULT_LIMIT, HistoryQuery, IntegrityQuery } from './dto/quota.dto';
import { HistoryService } from './history.service';
import { sendChangeHeaders } from './change-headers';
import { IdempotencyKeyHeader } from './idempotency-key.header';
import { NoQuery } from '../common/validation';
import { MemberIdPipe } from './member-id.pipe';
import { QuotaService } from './quota.service';
import { historyJson } from './quota.views';

@ApiTags('ledger')
@Controller('admin/quota')
@Roles('admin', 'operator')
export class AdminQuotaController {
  constructor(
    private readonly quota: QuotaService,
    private readonly history: HistoryService,
  ) {}

  @Post('members/:id/adjust')
  @ApiOperation({ summary: "Adjust one member's balance by a delta or to a new value" })
  @ApiIdempotencyKey()
  @ApiDataResponse(AdjustmentSchema, { headers: REPLAY_HEADER })
  @ApiProblems(
    'not_found',
    'negative_balance',
    'balance_out_of_range',
    'idempotency_key_mismatch',
    'idempotency_key_in_use',
  )
  @HttpCode(200)
  async adjust(
    @NoQuery() _query: undefined,
    @CurrentPrincipal() caller: Principal,
    @Param('id', MemberIdPipe) id: string,
    @Body() body: AdjustDto,
    @IdempotencyKeyHeader() key: string | undefined,
    @Res({ passthrough: true }) res: HttpReply,
  ) {
    const change = await this.quota.adjust(
      caller,
      id,
      { delta: body.delta, newQuota: body.new_quota, reason: body.reason, note: body.note },
      key,
    );
    sendChangeHeaders(res, change.headers, change.replayed);
    return {
      data: {
        member_id: change.entry.memberId,
        delta: change.entry.delta,
        balance: change.entry.balanceAfter,
        reason: change.entry.reason,
        history_id: change.entry.historyId,
      },
    };
  }

  @Get('history')
  @ApiOperation({ summary: 'The quota ledger, newest first, with keyset pagination' })
  @ApiCursorResponse(HistoryEntrySchema)
  @ApiProblems('validation_failed')
  async listHistory(@Query() query: HistoryQuery) {
    const limit = query.limit ?? PAGE_DEFAULT_LIMIT;
    const page = await this.history.list({
      memberId: query.member_id,
      reason: query.reason,
      from: query.from === undefined ? undefined : new Date(query.from),
      to: query.to === undefined ? undefined : new Date(query.to),
      limit,
      cursor: query.cursor,
    });
    return { data: page.rows.map(historyJson), meta: { limit, next_cursor: page.nextCursor } };
  }

  @Get('integrity')
  @ApiOperation({ summary: 'Check that every balance equals the sum of its ledger' })
  @ApiDataResponse(IntegrityReportSchema)
  @ApiProblems('validation_failed', 'not_found')
  async integrity(@Query() query: IntegrityQuery) {
    return { data: await this.history.integrity(query.member_id) };
  }
}
