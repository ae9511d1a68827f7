import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { CurrentPrincipal, Roles } from '../auth/decorators';
import type { Principal } from '../auth/principal';
import { ConfigsService } from './configs.service';
import { CreateConfigDto, ListConfigsQuery, UpdateConfigDto } from './dto/config.dto';
import { NoQuery } from './dto/validation';
import { ConfigIdPipe } from './member-id.pipe';
import { configJson } from './quota.views';

@Controller('admin/quota/configs')
export class ConfigsController {
  constructor(private readonly configs: ConfigsService) {}

  @Get()
  @Roles('admin', 'operator')
  async list(@Query() query: ListConfigsQuery) {
    const configs = await this.configs.list({ isActive: query.is_active });
    return { data: configs.map(configJson), meta: { page: 1, per_page: configs.length, total: configs.length } };
  }

  @Get(':id')
  @Roles('admin', 'operator')
  async get(@NoQuery() _query: undefined, @Param('id', ConfigIdPipe) id: string) {
    return { data: configJson(await this.configs.get(id)) };
  }

  @Post()
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
    return { data: configJson(config) };
  }

  @Delete(':id')
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
