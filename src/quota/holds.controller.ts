import { Body, Controller, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import { ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ChecksCallerInTransaction, CurrentPrincipal, Roles } from '../auth/decorators';
import type { Principal } from '../auth/principal';
import type { ErrorCode } from '../common/error-codes';
import type { HttpReply } from '../common/http';
import { NoQuery } from '../common/validation';
import {
  ApiCursorResponse,
  ApiDataResponse,
  ApiIdempotencyKey,
  QUOTA_HEADERS,
  REPLAY_HEADER,
} from '../openapi/decorators';
import { ApiProblems } from '../openapi/problems';
import { CommitHoldDto, HoldsQuery, NewHoldDto, OwnHoldsQuery } from './dto/hold.dto';
import { PAGE_DEFAULT_LIMIT } from './dto/quota.dto';
import { HoldChangeSchema, HoldSchema } from './holds.schemas';
import { holdJson, HoldsService, type HoldChange, type HoldsPage } from './holds.service';
import { sendChangeHeaders } from './change-headers';
import { IdempotencyKeyHeader } from './idempotency-key.header';
import { HoldIdPipe, MemberIdPipe } from './member-id.pipe';
import { QuotaService } from './quota.service';

const CREATE_PROBLEMS: readonly ErrorCode[] = [
  'not_found',
  'validation_failed',
  'insufficient_quota',
  'member_inactive',
  'config_inactive',
  'idempotency_key_mismatch',
  'idempotency_key_in_use',
];
const SETTLE_PROBLEMS: readonly ErrorCode[] = [
  'not_found',
  'validation_failed',
  'hold_settled',
  'hold_expired',
  // Giving the hold back would take a balance raised meanwhile above 2^31-1.
  'balance_out_of_range',
  'idempotency_key_mismatch',
  'idempotency_key_in_use',
];

function changeJson(res: HttpReply, change: HoldChange) {
  sendChangeHeaders(res, change.headers, change.replayed);
  return { data: { ...holdJson(change.hold), balance: change.balance } };
}

function pageJson(page: HoldsPage, limit: number) {
  return { data: page.holds.map(holdJson), meta: { limit, next_cursor: page.nextCursor } };
}

/**
 * Holds: reserve units now, commit or release them later (contract §10). Making a hold is for the
 * callers that may consume for the member; settling is for the caller that made the hold and for
 * admins (anyone else is told the hold does not exist, HoldsService decides).
 */
@ApiTags('holds')
@Controller()
export class HoldsController {
  constructor(
    private readonly holds: HoldsService,
    private readonly quota: QuotaService,
  ) {}

  @Post('quota/members/:id/holds')
  @ApiOperation({ summary: "Reserve units of a member's quota; they come back by themselves at expires_at" })
  @ApiIdempotencyKey()
  @ApiDataResponse(HoldChangeSchema, { status: 201, headers: { ...QUOTA_HEADERS, ...REPLAY_HEADER } })
  @ApiProblems(...CREATE_PROBLEMS)
  @HttpCode(201)
  @ChecksCallerInTransaction()
  @Roles('admin', 'service')
  async create(
    @NoQuery() _query: undefined,
    @CurrentPrincipal() caller: Principal,
    @Param('id', MemberIdPipe) id: string,
    @Body() body: NewHoldDto,
    @IdempotencyKeyHeader() key: string | undefined,
    @Res({ passthrough: true }) res: HttpReply,
  ) {
    return changeJson(res, await this.holds.create(caller, id, holdRequest(body), key));
  }

  @Post('quota/me/holds')
  @ApiOperation({ summary: "Reserve units of the calling member's own quota" })
  @ApiIdempotencyKey()
  @ApiDataResponse(HoldChangeSchema, { status: 201, headers: { ...QUOTA_HEADERS, ...REPLAY_HEADER } })
  @ApiProblems(...CREATE_PROBLEMS)
  @HttpCode(201)
  @ChecksCallerInTransaction()
  @Roles('member')
  async createOwn(
    @NoQuery() _query: undefined,
    @CurrentPrincipal() caller: Principal,
    @Body() body: NewHoldDto,
    @IdempotencyKeyHeader() key: string | undefined,
    @Res({ passthrough: true }) res: HttpReply,
  ) {
    return changeJson(res, await this.holds.create(caller, this.quota.ownMemberId(caller), holdRequest(body), key));
  }

  @Get('quota/me/holds')
  @ApiOperation({ summary: "The calling member's holds, newest first" })
  @ApiCursorResponse(HoldSchema)
  @ApiProblems('not_found', 'validation_failed')
  @Roles('member')
  async listOwn(@Query() query: OwnHoldsQuery, @CurrentPrincipal() caller: Principal) {
    const limit = query.limit ?? PAGE_DEFAULT_LIMIT;
    const memberId = this.quota.ownMemberId(caller);
    return pageJson(await this.holds.list({ memberId, status: query.status, cursor: query.cursor }, limit), limit);
  }

  @Get('quota/holds/:hold_id')
  @ApiOperation({ summary: 'One hold (its maker, admins and operators; a member: holds of its own member)' })
  @ApiDataResponse(HoldSchema)
  @ApiProblems('not_found', 'validation_failed')
  @Roles('admin', 'operator', 'service', 'member')
  async get(
    @NoQuery() _query: undefined,
    @CurrentPrincipal() caller: Principal,
    @Param('hold_id', HoldIdPipe) holdId: string,
  ) {
    return { data: holdJson(await this.holds.get(caller, holdId)) };
  }

  @Post('quota/holds/:hold_id/commit')
  @ApiOperation({ summary: 'Commit part or all of a hold (consumed) and give the rest back at once' })
  @ApiIdempotencyKey()
  @ApiBody({ type: CommitHoldDto, required: false })
  @ApiDataResponse(HoldChangeSchema, { headers: { ...QUOTA_HEADERS, ...REPLAY_HEADER } })
  @ApiProblems(...SETTLE_PROBLEMS)
  @HttpCode(200)
  @Roles('admin', 'operator', 'service', 'member')
  async commit(
    @NoQuery() _query: undefined,
    @CurrentPrincipal() caller: Principal,
    @Param('hold_id', HoldIdPipe) holdId: string,
    @Body() body: CommitHoldDto,
    @IdempotencyKeyHeader() key: string | undefined,
    @Res({ passthrough: true }) res: HttpReply,
  ) {
    return changeJson(res, await this.holds.commit(caller, holdId, body.amount, key));
  }

  @Post('quota/holds/:hold_id/release')
  @ApiOperation({ summary: 'Give every unit of a hold back' })
  @ApiIdempotencyKey()
  @ApiDataResponse(HoldChangeSchema, { headers: { ...QUOTA_HEADERS, ...REPLAY_HEADER } })
  @ApiProblems(...SETTLE_PROBLEMS)
  @HttpCode(200)
  @Roles('admin', 'operator', 'service', 'member')
  async release(
    @NoQuery() _query: undefined,
    @CurrentPrincipal() caller: Principal,
    @Param('hold_id', HoldIdPipe) holdId: string,
    @IdempotencyKeyHeader() key: string | undefined,
    @Res({ passthrough: true }) res: HttpReply,
  ) {
    return changeJson(res, await this.holds.release(caller, holdId, key));
  }

  @Get('admin/quota/holds')
  @ApiOperation({ summary: 'Holds of every member (or one), newest first' })
  @ApiCursorResponse(HoldSchema)
  @ApiProblems('validation_failed')
  @Roles('admin', 'operator')
  async list(@Query() query: HoldsQuery) {
    const limit = query.limit ?? PAGE_DEFAULT_LIMIT;
    const filter = { memberId: query.member_id, status: query.status, cursor: query.cursor };
    return pageJson(await this.holds.list(filter, limit), limit);
  }
}

function holdRequest(body: NewHoldDto) {
  return { amount: body.amount, ttlSeconds: body.ttl_seconds, note: body.note };
}
