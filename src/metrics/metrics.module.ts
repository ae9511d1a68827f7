import { Global, Module } from '@nestjs/common';
import { collectDefaultMetrics } from 'prom-client';
import { DatabasePoolMetrics } from './database-pool.metrics';
import { HttpMetrics } from './http-metrics';
import { MetricsController } from './metrics.controller';
import { MetricsRegistry } from './metrics-registry';

export { MetricsRegistry };

@Global()
@Module({
  controllers: [MetricsController],
  providers: [
    {
      provide: MetricsRegistry,
      useFactory: () => {
        const registry = new MetricsRegistry();
        collectDefaultMetrics({ register: registry });
        return registry;
      },
    },
    HttpMetrics,
    DatabasePoolMetrics,
  ],
  exports: [MetricsRegistry, HttpMetrics],
})
export class MetricsModule {}
