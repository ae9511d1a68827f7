import { CacheModule } from '@nestjs/cache-manager';
import { Module } from '@nestjs/common';
import type { Logger } from 'pino';
import { ROOT_LOGGER } from '../common/logger.token';
import { AppConfig } from '../config/app-config';
import { EventsModule } from '../events/events.module';
import { QuotaModule } from '../quota/quota.module';
import { AnalyticsController } from './analytics.controller';
import { AnalyticsMetrics } from './analytics.metrics';
import { AnalyticsService } from './analytics.service';
import { AnomaliesRepository } from './anomalies.repository';
import { AnomalyRetention } from './anomaly-retention.service';
import { MemberDailyRepository } from './member-daily.repository';
import { RollupsRepository } from './rollups.repository';
import { StatementController } from './statement.controller';
import { StatementService } from './statement.service';
import { StatsCache, statsCacheOptions } from './stats-cache';
import { StatsService } from './stats.service';
import { TailProcessor } from './tail-processor.service';
import { TailRepository } from './tail.repository';

/**
 * Quota stats (cached), members' statements and anomaly detection, fed asynchronously from the
 * ledger.
 */
@Module({
  imports: [
    QuotaModule,
    EventsModule,
    CacheModule.registerAsync({
      inject: [AppConfig, ROOT_LOGGER],
      useFactory: (config: AppConfig, logger: Logger) => statsCacheOptions(config, logger),
    }),
  ],
  controllers: [AnalyticsController, StatementController],
  providers: [
    AnomaliesRepository,
    TailRepository,
    RollupsRepository,
    MemberDailyRepository,
    AnalyticsMetrics,
    StatsCache,
    StatsService,
    AnalyticsService,
    StatementService,
    TailProcessor,
    AnomalyRetention,
  ],
  exports: [TailProcessor, StatsService, AnomalyRetention],
})
export class AnalyticsModule {}
