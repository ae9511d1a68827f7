import { Body, Controller, Get, Header, HttpCode, Post, Req } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import type { HttpRequest } from '../common/http';
import { NoQuery } from '../common/validation';
import { AllowedWhileReadOnly } from '../maintenance/read-only';
import { LoginRateLimit } from '../throttle/throttle.decorators';
import { AuthService } from './auth.service';
import { CurrentPrincipal, Public, Roles } from './decorators';
import { LoginDto } from './dto/login.dto';
import { ROLES, type Principal } from './principal';
import { UsersService } from './users.service';
import { ApiDataResponse } from '../openapi/decorators';
import { ApiProblems } from '../openapi/problems';
import { LoginResultSchema, UserSchema } from './auth.schemas';
import { userView } from './user.view';

@ApiTags('auth')
@Controller('auth')
export class AuthController {
  constructor(
    private readonly auth: AuthService,
    private readonly users: UsersService,
  ) {}

  @Post('login')
  @ApiOperation({ summary: 'Log in: exchange an email and password for a bearer token' })
  @ApiDataResponse(LoginResultSchema)
  @ApiProblems('invalid_credentials', 'account_locked')
  @Public()
  // Logging in records failed attempts, yet reads must stay reachable during a write freeze.
  @AllowedWhileReadOnly()
  @LoginRateLimit()
  @HttpCode(200)
  @Header('Cache-Control', 'no-store')
  async login(@NoQuery() _query: undefined, @Body() body: LoginDto, @Req() req: HttpRequest) {
    return { data: await this.auth.login(body.email, body.password, req.ip ?? 'unknown') };
  }

  @Get('me')
  @ApiOperation({ summary: 'The authenticated user' })
  @ApiDataResponse(UserSchema)
  @Roles(...ROLES)
  async me(@NoQuery() _query: undefined, @CurrentPrincipal() principal: Principal) {
    return { data: userView(await this.users.get(principal.userId)) };
  }
}
