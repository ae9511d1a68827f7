import { DynamicModule, Global, Module } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { ScheduleModule } from '@nestjs/schedule';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { Logger } from 'pino';
import { ROOT_LOGGER } from './common/logger.token';
import { ProblemDetailsFilter } from './common/problem-details.filter';
import { AppConfig } from './config/app-config';
import { ConfigModule } from './config/config.module';
import { appDataSourceOptions } from './app.data-source';
import { AnalyticsModule } from './analytics/analytics.module';
import { AuditModule } from './audit/audit.module';
import { AuthModule } from './auth/auth.module';
import { HealthModule } from './health/health.module';
import { JobsModule } from './jobs/jobs.module';
import { MaintenanceController } from './maintenance/maintenance.controller';
import { MaintenanceModule } from './maintenance/maintenance.module';
import { MetricsController } from './metrics/metrics.controller';
import { MetricsModule } from './metrics/metrics.module';
import { QuotaModule } from './quota/quota.module';
import { RedisModule } from './redis/redis.module';
import { WebhookDeliveryModule } from './webhooks/webhook-delivery.module';
import { WebhooksModule } from './webhooks/webhooks.module';

@Global()
@Module({})
class LoggingModule {
  static forRoot(logger: Logger): DynamicModule {
    return {
      module: LoggingModule,
      providers: [{ provide: ROOT_LOGGER, useValue: logger }],
      exports: [ROOT_LOGGER],
    };
  }
}

export interface AppModuleOptions {
  readonly config: AppConfig;
  readonly logger: Logger;
  /** Extra modules mounted beside the product's own (used by tests to probe shared plumbing). */
  readonly extraModules?: DynamicModule['imports'];
}

@Module({})
export class AppModule {
  static forRoot({ config, logger, extraModules = [] }: AppModuleOptions): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        LoggingModule.forRoot(logger),
        // Periodic work (analytics tail, sweeps, purges) is registered with Nest's scheduler.
        ScheduleModule.forRoot(),
        TypeOrmModule.forRootAsync({
          useFactory: () => ({
            ...appDataSourceOptions(config.database, config.migrationsRun),
            // A database that is down at boot gets a few tries, then the process exits and the
            // orchestrator restarts it; readiness covers outages after boot.
            retryAttempts: 5,
            retryDelay: 2000,
          }),
        }),
        RedisModule,
        AuditModule,
        MaintenanceModule,
        QuotaModule,
        AuthModule,
        MetricsModule,
        HealthModule,
        JobsModule.forRoot(config),
        AnalyticsModule,
        WebhooksModule,
        WebhookDeliveryModule,
        ...extraModules,
      ],
      // The scrape endpoint, on top of the metrics registry (global, below every module) and auth; the
      // write freeze switch, on top of its module and auth.
      controllers: [MetricsController, MaintenanceController],
      providers: [{ provide: APP_FILTER, useFactory: () => new ProblemDetailsFilter(logger) }],
    };
  }
}
