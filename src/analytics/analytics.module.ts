import { Module } from '@nestjs/common';

/** Quota stats (cached) and anomaly detection. */
@Module({})
export class AnalyticsModule {}
