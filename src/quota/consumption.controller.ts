import { Body, Controller, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import type { ErrorCode } from '../common/error-codes';
import type { HttpReply } from '../common/http';
import { ChecksCallerInTransaction, CurrentPrincipal, Roles } from '../auth/decorators';
import { ApiDataResponse, ApiIdempotencyKey, QUOTA_HEADERS, REPLAY_HEADER } from '../openapi/decorators';
import { ApiProblems } from '../openapi/problems';
import { BalanceSchema, QuotaChangeSchema } from './quota.schemas';
import type { Principal } from '../auth/principal';
import { AmountDto } from './dto/quota.dto';
import { BalanceQuery } from './dto/balance.dto';
import { sendChangeHeaders } from './change-headers';
import { IdempotencyKeyHeader } from './idempotency-key.header';
import { NoQuery } from '../common/validation';
import { MemberIdPipe } from './member-id.pipe';
import { QuotaService, type BalanceView, type QuotaChange } from './quota.service';

const CONSUME_PROBLEMS: readonly ErrorCode[] = [
  'not_found',
  'insufficient_quota',
  'member_inactive',
  'config_inactive',
  'idempotency_key_mismatch',
  'idempotency_key_in_use',
];

function amountJson(change: QuotaChange) {
  return {
    data: {
      member_id: change.entry.memberId,
      amount: Math.abs(change.entry.delta),
      balance: change.entry.balanceAfter,
      history_id: change.entry.historyId,
    },
  };
}

function balanceJson(view: BalanceView) {
  return {
    data: {
      member_id: view.memberId,
      external_id: view.externalId,
      membership_type: view.membershipType,
      balance: view.balance,
      held: view.held,
      max_quota: view.maxQuota,
      reset_period: view.resetPeriod,
      period_started_at: view.periodStartedAt?.toISOString() ?? null,
      next_reset_at: view.nextResetAt?.toISOString() ?? null,
      is_active: view.isActive,
      config_active: view.configActive,
      ...(view.asOf ? { as_of: view.asOf.toISOString() } : {}),
    },
  };
}

/** The consumption API that other services call, and a member's own view of its quota. */
@ApiTags('consumption')
@Controller('quota')
export class ConsumptionController {
  constructor(private readonly quota: QuotaService) {}

  @Get('me')
  @ApiOperation({ summary: "The calling member's own quota" })
  @ApiDataResponse(BalanceSchema, { headers: QUOTA_HEADERS })
  @ApiProblems('not_found', 'validation_failed')
  @Roles('member')
  async me(
    @NoQuery() _query: undefined,
    @CurrentPrincipal() caller: Principal,
    @Res({ passthrough: true }) res: HttpReply,
  ) {
    const { view, headers } = await this.quota.balance(caller, this.quota.ownMemberId(caller));
    sendChangeHeaders(res, headers);
    return balanceJson(view);
  }

  @Post('me/consume')
  @ApiOperation({ summary: "Consume from the calling member's own quota" })
  @ApiIdempotencyKey()
  @ApiDataResponse(QuotaChangeSchema, { headers: { ...QUOTA_HEADERS, ...REPLAY_HEADER } })
  @ApiProblems(...CONSUME_PROBLEMS)
  @HttpCode(200)
  @ChecksCallerInTransaction()
  @Roles('member')
  async consumeOwn(
    @NoQuery() _query: undefined,
    @CurrentPrincipal() caller: Principal,
    @Body() body: AmountDto,
    @IdempotencyKeyHeader() key: string | undefined,
    @Res({ passthrough: true }) res: HttpReply,
  ) {
    const change = await this.quota.consume(caller, this.quota.ownMemberId(caller), body, key);
    sendChangeHeaders(res, change.headers, change.replayed);
    return amountJson(change);
  }

  @Get('members/:id')
  @ApiOperation({
    summary:
      "A member's balance, max, period and next reset, or its balance at an instant with `at` (a member token: its own only)",
  })
  @ApiDataResponse(BalanceSchema, { headers: QUOTA_HEADERS })
  @ApiProblems('not_found', 'validation_failed')
  @Roles('admin', 'service', 'member')
  async balance(
    @Query() query: BalanceQuery,
    @CurrentPrincipal() caller: Principal,
    @Param('id', MemberIdPipe) id: string,
    @Res({ passthrough: true }) res: HttpReply,
  ) {
    const { view, headers } = await this.quota.balance(caller, id, query.at);
    sendChangeHeaders(res, headers);
    return balanceJson(view);
  }

  @Post('members/:id/consume')
  @ApiOperation({ summary: "Consume from a member's quota; refused with 409 insufficient_quota past the balance" })
  @ApiIdempotencyKey()
  @ApiDataResponse(QuotaChangeSchema, { headers: { ...QUOTA_HEADERS, ...REPLAY_HEADER } })
  @ApiProblems(...CONSUME_PROBLEMS)
  @HttpCode(200)
  @ChecksCallerInTransaction()
  @Roles('admin', 'service', 'member')
  async consume(
    @NoQuery() _query: undefined,
    @CurrentPrincipal() caller: Principal,
    @Param('id', MemberIdPipe) id: string,
    @Body() body: AmountDto,
    @IdempotencyKeyHeader() key: string | undefined,
    @Res({ passthrough: true }) res: HttpReply,
  ) {
    const change = await this.quota.consume(caller, id, body, key);
    sendChangeHeaders(res, change.headers, change.replayed);
    return amountJson(change);
  }

  @Post('members/:id/refund')
  @ApiOperation({ summary: "Give units back to a member's quota" })
  @ApiIdempotencyKey()
  @ApiDataResponse(QuotaChangeSchema, { headers: { ...QUOTA_HEADERS, ...REPLAY_HEADER } })
  @ApiProblems(
    'not_found',
    'member_inactive',
    'config_inactive',
    'balance_out_of_range',
    'idempotency_key_mismatch',
    'idempotency_key_in_use',
  )
  @HttpCode(200)
  @ChecksCallerInTransaction()
  @Roles('admin', 'service')
  async refund(
    @NoQuery() _query: undefined,
    @CurrentPrincipal() caller: Principal,
    @Param('id', MemberIdPipe) id: string,
    @Body() body: AmountDto,
    @IdempotencyKeyHeader() key: string | undefined,
    @Res({ passthrough: true }) res: HttpReply,
  ) {
    const change = await this.quota.refund(caller, id, body, key);
    sendChangeHeaders(res, change.headers, change.replayed);
    return amountJson(change);
  }
}
