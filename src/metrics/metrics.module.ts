import { Global, Module } from '@nestjs/common';
import { collectDefaultMetrics } from 'prom-client';
import { DatabasePoolMetrics } from './database-pool.metrics';
import { HttpMetrics } from './http-metrics';
import { MetricsRegistry } from './metrics-registry';

export { MetricsRegistry };

/**
 * The registry every module records into: global, like configuration and the logger. The scrape
 * endpoint (metrics.controller.ts) sits on top with the app, as it relies on auth's decorators.
 */
@Global()
@Module({
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
