import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiNoContentResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal, Roles } from '../auth/decorators';
import { ApiDataResponse, ApiPageResponse } from '../openapi/decorators';
import { ApiProblems } from '../openapi/problems';
import { ConfigChangeMetaSchema, QuotaConfigSchema } from './quota.schemas';
import type { Principal } from '../auth/principal';
import { ConfigsService } from './configs.service';
import { CreateConfigDto, ListConfigsQuery, UpdateConfigDto } from './dto/config.dto';
import { NoQuery } from '../common/validation';
import { ConfigIdPipe } from './member-id.pipe';
import { configJson } from './quota.views';

@ApiTags('quota configs')
@Controller('admin/quota/configs')
export class ConfigsController {
  constructor(private readonly configs: ConfigsService) {}

  @Get()
  @ApiOperation({ summary: 'List quota configs (all on one page)' })
  @ApiPageResponse(QuotaConfigSchema)
  @ApiProblems('validation_failed')
  @Roles('admin', 'operator')
  async list(@Query() query: ListConfigsQuery) {
    const configs = await this.configs.list({ isActive: query.is_active });
    return { data: configs.map(configJson), meta: { page: 1, per_page: configs.length, total: configs.length } };
  }

  @Get(':id')
  @ApiOperation({ summary: 'One quota config' })
  @ApiDataResponse(QuotaConfigSchema)
  @ApiProblems('not_found', 'validation_failed')
  @Roles('admin', 'operator')
  async get(@NoQuery() _query: undefined, @Param('id', ConfigIdPipe) id: string) {
    return { data: configJson(await this.configs.get(id)) };
  }

  @Post()
  @ApiOperation({ summary: 'Create the quota config of a membership type' })
  @ApiDataResponse(QuotaConfigSchema, { status: 201, description: 'Created' })
  @ApiProblems('duplicate_membership_type')
  @HttpCode(201)
  @Roles('admin')
  async create(@NoQuery() _query: undefined, @CurrentPrincipal() actor: Principal, @Body() body: CreateConfigDto) {
    const config = await this.configs.create(actor, {
      membershipType: body.membership_type,
      maxQuota: body.max_quota,
      resetPeriod: body.reset_period,
      isActive: body.is_active,
      description: body.description,
    });
    return { data: configJson(config) };
  }

  @Patch(':id')
  @ApiOperation({ summary: 'Change a quota config; `apply` says how members get a new max_quota' })
  @ApiDataResponse(QuotaConfigSchema, { optionalMeta: ConfigChangeMetaSchema })
  @ApiProblems('not_found')
  @Roles('admin')
  async update(
    @NoQuery() _query: undefined,
    @CurrentPrincipal() actor: Principal,
    @Param('id', ConfigIdPipe) id: string,
    @Body() body: UpdateConfigDto,
  ) {
    const config = await this.configs.update(actor, id, {
      maxQuota: body.max_quota,
      resetPeriod: body.reset_period,
      isActive: body.is_active,
      description: body.description,
      apply: body.apply,
    });
    // apply delta|reset: the background operation that propagates the change to the members.
    if ('operationId' in config) return { data: configJson(config), meta: { operation_id: config.operationId } };
    return { data: configJson(config) };
  }

  @Delete(':id')
  @ApiOperation({ summary: 'Delete a quota config that no member has' })
  @ApiNoContentResponse({ description: 'Deleted' })
  @ApiProblems('not_found', 'config_in_use', 'validation_failed')
  @HttpCode(204)
  @Roles('admin')
  async remove(
    @NoQuery() _query: undefined,
    @CurrentPrincipal() actor: Principal,
    @Param('id', ConfigIdPipe) id: string,
  ): Promise<void> {
    await this.configs.remove(actor, id);
  }
}
