import { CacheModule } from '@nestjs/cache-manager';
import { Module } from '@nestjs/common';
import type { Logger } from 'pino';
import { ROOT_LOGGER } from '../common/logger.token';
import { AppConfig } from '../config/app-config';
import { QuotaModule } from '../quota/quota.module';
import { AnalyticsController } from './analytics.controller';
import { AnalyticsMetrics } from './analytics.metrics';
import { AnalyticsService } from './analytics.service';
import { AnomaliesRepository } from './anomalies.repository';
import { AnomalyRetention } from './anomaly-retention.service';
import { RollupsRepository } from './rollups.repository';
import { StatsCache, statsCacheOptions } from './stats-cache';
import { StatsService } from './stats.service';
import { TailProcessor } from './tail-processor.service';
import { TailRepository } from './tail.repository';

/** Quota stats (cached) and anomaly detection, fed asynchronously from the ledger. */
@Module({
  imports: [
    QuotaModule,
    CacheModule.registerAsync({
      inject: [AppConfig, ROOT_LOGGER],
      useFactory: (config: AppConfig, logger: Logger) => statsCacheOptions(config, logger),
    }),
  ],
  controllers: [AnalyticsController],
  providers: [
    AnomaliesRepository,
    TailRepository,
    RollupsRepository,
    AnalyticsMetrics,
    StatsCache,
    StatsService,
    AnalyticsService,
    TailProcessor,
    AnomalyRetention,
  ],
  exports: [TailProcessor, StatsService, AnomalyRetention],
})
export class AnalyticsModule {}
