import { Injectable } from '@nestjs/common';
import { Gauge, Histogram } from 'prom-client';
import { MetricsRegistry } from '../metrics/metrics.module';
import { QuotaDatabase } from '../database/database';
import { OperationsRepository } from './operations.repository';

@Injectable()
export class JobsMetrics {
  readonly duration: Histogram<'kind' | 'status'>;
  readonly queueDepth: Gauge<'kind' | 'status'>;

  constructor(registry: MetricsRegistry, db: QuotaDatabase, operations: OperationsRepository) {
    this.duration = new Histogram({
      name: 'quota_operation_duration_seconds',
      help: 'Background operations from start to a final status, by kind and final status.',
      labelNames: ['kind', 'status'],
      buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600],
      registers: [registry],
    });
    this.queueDepth = new Gauge({
      name: 'quota_operations_queue_depth',
      help: 'Background operations not finished yet (queued or running), by kind and status; read from the database, the source of truth.',
      labelNames: ['kind', 'status'],
      registers: [registry],
      async collect() {
        let rows: { kind: string; status: string; n: unknown }[];
        try {
          rows = await db.read((s) => operations.countActiveByKindAndStatus(s));
        } catch {
          // The database being away must not break the whole scrape; readiness reports it.
          return;
        }
        this.reset();
        for (const kind of ['bulk_adjust', 'config_propagation', 'periodic_reset']) {
          for (const status of ['queued', 'running']) this.set({ kind, status }, 0);
        }
        for (const row of rows) this.set({ kind: row.kind, status: row.status }, Number(row.n));
      },
    });
  }
}
