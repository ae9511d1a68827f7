import { DynamicModule, Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AuditModule } from '../audit/audit.module';
import { PasswordHasher } from '../auth/password-hasher';
import { User } from '../auth/user.entity';
import { UsersService } from '../auth/users.service';
import type { AppConfig } from '../config/app-config';
import { ConfigModule } from '../config/config.module';
import { appDataSourceOptions } from '../app.data-source';
import { MaintenanceRepository } from '../maintenance/maintenance.repository';
import { MaintenanceService } from '../maintenance/maintenance.service';

export interface CliModuleOptions {
  /** Apply pending migrations on start, as the service would (user:create); read-only commands do not. */
  readonly runMigrations: boolean;
}

/**
 * What the commands need and nothing more: the config, one database connection, users, the write
 * freeze switch and the audit log. No HTTP server, no Redis, no queues, no workers or timers.
 */
@Module({})
export class CliModule {
  static forRoot(config: AppConfig, { runMigrations }: CliModuleOptions): DynamicModule {
    return {
      module: CliModule,
      imports: [
        ConfigModule.forRoot(config),
        TypeOrmModule.forRoot({
          ...appDataSourceOptions(config.database, runMigrations),
          // One try: a command that cannot reach the database says so at once (exit status 1).
          retryAttempts: 0,
        }),
        TypeOrmModule.forFeature([User]),
        AuditModule,
      ],
      providers: [PasswordHasher, UsersService, MaintenanceRepository, MaintenanceService],
    };
  }
}

/**
 * A Nest application context for one command run; the caller closes it. Nest's own log lines are
 * off so that a command's output is only what the command writes; errors are thrown, not printed.
 */
export function createCliContext(config: AppConfig, options: CliModuleOptions): Promise<INestApplicationContext> {
  return NestFactory.createApplicationContext(CliModule.forRoot(config, options), {
    logger: false,
    abortOnError: false,
  });
}
