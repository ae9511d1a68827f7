import { Body, Controller, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiExtraModels, ApiOperation, ApiResponse, ApiTags, getSchemaPath } from '@nestjs/swagger';
import { ApiDataResponse, ApiIdempotencyKey, ApiPageResponse, REPLAY_HEADER } from '../openapi/decorators';
import { ApiProblems } from '../openapi/problems';
import type { HttpReply } from '../common/http';
import { CurrentPrincipal, Roles } from '../auth/decorators';
import type { Principal } from '../auth/principal';
import { NoQuery } from '../common/validation';
import { IdempotencyKeyHeader } from '../quota/idempotency-key.header';
import { OperationIdPipe } from './operation-id.pipe';
import {
  BulkAdjustAcceptedSchema,
  BulkAdjustDryRunSchema,
  BulkAdjustDto,
  ListOperationsQuery,
  OperationSchema,
} from './dto/operations.dto';
import { operationJson } from './operation.view';
import { OperationsService } from './operations.service';

export const BULK_ADJUST_MESSAGE = 'Bulk adjustment queued for processing';
const DEFAULT_PER_PAGE = 20;

@ApiTags('operations')
@ApiBearerAuth()
@Controller('admin/quota')
export class OperationsController {
  constructor(private readonly operations: OperationsService) {}

  @Post('bulk-adjust')
  @Roles('admin')
  @ApiOperation({
    summary: 'Queue a bulk adjustment of listed members or a whole membership type (dry_run: only count)',
  })
  @ApiIdempotencyKey()
  @ApiExtraModels(BulkAdjustAcceptedSchema, BulkAdjustDryRunSchema)
  @ApiResponse({
    status: 202,
    description: 'Queued (or the first answer replayed for a repeated Idempotency-Key)',
    schema: { $ref: getSchemaPath(BulkAdjustAcceptedSchema) },
    headers: REPLAY_HEADER,
  })
  @ApiDataResponse(BulkAdjustDryRunSchema, { status: 200, description: 'dry_run: what would change' })
  @ApiProblems('validation_failed', 'idempotency_key_mismatch', 'idempotency_key_in_use')
  async bulkAdjust(
    @NoQuery() _query: undefined,
    @CurrentPrincipal() caller: Principal,
    @Body() body: BulkAdjustDto,
    @IdempotencyKeyHeader() key: string | undefined,
    @Res({ passthrough: true }) res: HttpReply,
  ) {
    const input = {
      memberIds: body.member_ids,
      membershipType: body.membership_type,
      newQuota: body.new_quota,
      delta: body.delta,
      reason: body.reason,
      note: body.note,
    };
    if (body.dry_run === true) {
      const answer = await this.operations.dryRun(input);
      res.status(200);
      return {
        data: {
          dry_run: true,
          total: answer.total,
          would_change: answer.wouldChange,
          unchanged: answer.total - answer.wouldChange,
        },
      };
    }
    const accepted = await this.operations.bulkAdjust(caller, input, key);
    res.status(202);
    if (accepted.replayed) res.header('Idempotent-Replayed', 'true');
    return {
      data: { operation_id: accepted.operationId, status: 'queued', total: accepted.total },
      message: BULK_ADJUST_MESSAGE,
    };
  }

  @Get('operations')
  @Roles('admin', 'operator')
  @ApiOperation({ summary: 'List background operations, newest first' })
  @ApiPageResponse(OperationSchema)
  @ApiProblems('validation_failed')
  async list(@Query() query: ListOperationsQuery) {
    const page = query.page ?? 1;
    const perPage = query.per_page ?? DEFAULT_PER_PAGE;
    const { operations, total } = await this.operations.list({
      status: query.status,
      kind: query.kind,
      page,
      perPage,
    });
    return { data: operations.map(operationJson), meta: { page, per_page: perPage, total } };
  }

  @Get('operations/:id')
  @Roles('admin', 'operator')
  @ApiOperation({ summary: 'One background operation: status, progress, timestamps, error' })
  @ApiDataResponse(OperationSchema)
  @ApiProblems('not_found')
  async get(@NoQuery() _query: undefined, @Param('id', OperationIdPipe) id: string) {
    return { data: operationJson(await this.operations.get(id)) };
  }

  @Post('operations/:id/cancel')
  @HttpCode(202)
  @Roles('admin')
  @ApiOperation({
    summary:
      'Cancel an operation: a queued one at once, a running one between chunks (409 operation_finished when done)',
  })
  @ApiDataResponse(OperationSchema, { status: 202, description: 'Cancelled, or asked to stop' })
  @ApiProblems('not_found', 'operation_finished')
  async cancel(
    @NoQuery() _query: undefined,
    @CurrentPrincipal() caller: Principal,
    @Param('id', OperationIdPipe) id: string,
  ) {
    return { data: operationJson(await this.operations.cancel(caller, id)) };
  }
}
