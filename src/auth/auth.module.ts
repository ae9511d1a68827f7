import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { JwtModule } from '@nestjs/jwt';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AuditModule } from '../audit/audit.module';
import { MaintenanceModule } from '../maintenance/maintenance.module';
import { AppConfig } from '../config/app-config';
import { ThrottleModule } from '../throttle/throttle.module';
import { AccessGuard } from './access.guard';
import { AuthController } from './auth.controller';
import { AuthMetrics } from './auth.metrics';
import { AuthService } from './auth.service';
import { BootstrapAdmin } from './bootstrap-admin';
import { JwtAuthenticator } from './jwt-authenticator';
import { JwtStrategy } from './jwt.strategy';
import { PasswordHasher } from './password-hasher';
import { JWT_ALGORITHM, TokenService } from './token.service';
import { User } from './user.entity';
import { UsersController } from './users.controller';
import { UsersService } from './users.service';

@Module({
  imports: [
    TypeOrmModule.forFeature([User]),
    JwtModule.registerAsync({
      inject: [AppConfig],
      useFactory: (config: AppConfig) => ({
        secret: config.jwt.secret,
        signOptions: { algorithm: JWT_ALGORITHM },
        verifyOptions: { algorithms: [JWT_ALGORITHM] },
      }),
    }),
    ThrottleModule,
    AuditModule,
    MaintenanceModule,
  ],
  controllers: [AuthController, UsersController],
  providers: [
    PasswordHasher,
    TokenService,
    JwtStrategy,
    JwtAuthenticator,
    AuthMetrics,
    AuthService,
    UsersService,
    BootstrapAdmin,
    { provide: APP_GUARD, useClass: AccessGuard },
  ],
  exports: [UsersService, TokenService],
})
export class AuthModule {}
