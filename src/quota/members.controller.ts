import { Body, Controller, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal, Roles } from '../auth/decorators';
import { ApiBatchResponse, ApiDataResponse, ApiPageResponse } from '../openapi/decorators';
import { ApiProblems } from '../openapi/problems';
import { MemberSchema } from './quota.schemas';
import type { Principal } from '../auth/principal';
import { BatchCreateMembersDto, CreateMemberDto, ListMembersQuery, UpdateMemberDto } from './dto/member.dto';
import { NoQuery } from '../common/validation';
import { MemberIdPipe } from './member-id.pipe';
import { MembersService } from './members.service';
import { memberJson } from './quota.views';

const DEFAULT_PER_PAGE = 20;

@ApiTags('members')
@Controller('admin/members')
@Roles('admin', 'operator')
export class MembersController {
  constructor(private readonly members: MembersService) {}

  @Get()
  @ApiOperation({ summary: 'List members' })
  @ApiPageResponse(MemberSchema)
  @ApiProblems('validation_failed')
  async list(@Query() query: ListMembersQuery) {
    const page = query.page ?? 1;
    const perPage = query.per_page ?? DEFAULT_PER_PAGE;
    const { members, total } = await this.members.list({ membershipType: query.membership_type, page, perPage });
    return { data: members.map(memberJson), meta: { page, per_page: perPage, total } };
  }

  @Post()
  @ApiOperation({
    summary: "Create a member; its balance starts at the type's max_quota unless initial_quota is given",
  })
  @ApiDataResponse(MemberSchema, { status: 201, description: 'Created' })
  @ApiProblems('member_exists', 'config_inactive')
  @HttpCode(201)
  async create(@NoQuery() _query: undefined, @CurrentPrincipal() actor: Principal, @Body() body: CreateMemberDto) {
    const member = await this.members.create(actor, {
      externalId: body.external_id,
      membershipType: body.membership_type,
      initialQuota: body.initial_quota,
    });
    return { data: memberJson(member) };
  }

  @Post('batch')
  @ApiOperation({ summary: 'Create up to 1,000 members at once, all or nothing' })
  @ApiBatchResponse(MemberSchema, { status: 201, description: 'Created' })
  @ApiProblems('member_exists', 'config_inactive')
  @HttpCode(201)
  async createBatch(
    @NoQuery() _query: undefined,
    @CurrentPrincipal() actor: Principal,
    @Body() body: BatchCreateMembersDto,
  ) {
    const members = await this.members.createBatch(
      actor,
      body.members.map((m) => ({
        externalId: m.external_id,
        membershipType: m.membership_type,
        initialQuota: m.initial_quota,
      })),
    );
    return { data: members.map(memberJson), meta: { created: members.length } };
  }

  @Get(':id')
  @ApiOperation({ summary: 'One member' })
  @ApiDataResponse(MemberSchema)
  @ApiProblems('not_found', 'validation_failed')
  async get(@NoQuery() _query: undefined, @Param('id', MemberIdPipe) id: string) {
    return { data: memberJson(await this.members.get(id)) };
  }

  @Patch(':id')
  @ApiOperation({ summary: "Change a member's membership type or active flag" })
  @ApiDataResponse(MemberSchema)
  @ApiProblems('not_found', 'config_inactive', 'balance_out_of_range')
  async update(
    @NoQuery() _query: undefined,
    @CurrentPrincipal() actor: Principal,
    @Param('id', MemberIdPipe) id: string,
    @Body() body: UpdateMemberDto,
  ) {
    const member = await this.members.update(actor, id, {
      membershipType: body.membership_type,
      isActive: body.is_active,
    });
    return { data: memberJson(member) };
  }
}
