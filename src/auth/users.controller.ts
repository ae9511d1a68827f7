import { Body, Controller, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { NoQuery } from '../common/validation';
import { ApiDataResponse, ApiPageResponse } from '../openapi/decorators';
import { ApiProblems } from '../openapi/problems';
import { UserSchema } from './auth.schemas';
import { CurrentPrincipal, Roles } from './decorators';
import { CreateUserDto, ListUsersQuery, UpdateUserDto } from './dto/user.dto';
import { UserIdPipe } from './id-param.pipe';
import type { Principal } from './principal';
import { UsersService } from './users.service';
import { userView } from './user.view';

const DEFAULT_PER_PAGE = 20;

@ApiTags('users')
@Controller('admin/users')
@Roles('admin')
export class UsersController {
  constructor(private readonly users: UsersService) {}

  @Get()
  @ApiOperation({ summary: 'List users' })
  @ApiPageResponse(UserSchema)
  @ApiProblems('validation_failed')
  async list(@Query() query: ListUsersQuery) {
    const page = query.page ?? 1;
    const perPage = query.per_page ?? DEFAULT_PER_PAGE;
    const { users, total } = await this.users.list({
      page,
      perPage,
      role: query.role,
      isActive: query.is_active === undefined ? undefined : query.is_active === 'true',
    });
    return { data: users.map(userView), meta: { page, per_page: perPage, total } };
  }

  @Post()
  @ApiOperation({ summary: 'Create a user (a `member` user needs member_id)' })
  @ApiDataResponse(UserSchema, { status: 201, description: 'Created' })
  @ApiProblems('email_taken')
  @HttpCode(201)
  async create(@NoQuery() _query: undefined, @CurrentPrincipal() actor: Principal, @Body() body: CreateUserDto) {
    const user = await this.users.create(actor, {
      email: body.email,
      password: body.password,
      role: body.role,
      memberId: body.member_id ?? null,
    });
    return { data: userView(user) };
  }

  @Patch(':id')
  @ApiOperation({ summary: "Change a user's role, active flag or password (existing tokens stop working)" })
  @ApiDataResponse(UserSchema)
  @ApiProblems('not_found', 'last_admin')
  async update(
    @NoQuery() _query: undefined,
    @CurrentPrincipal() actor: Principal,
    @Param('id', UserIdPipe) id: string,
    @Body() body: UpdateUserDto,
  ) {
    const user = await this.users.update(actor, id, {
      role: body.role,
      isActive: body.is_active,
      password: body.password,
      memberId: body.member_id,
    });
    return { data: userView(user) };
  }
}
