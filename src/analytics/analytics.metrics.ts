import { Injectable } from '@nestjs/common';
import { Counter, Gauge } from 'prom-client';
import { MetricsRegistry } from '../metrics/metrics.module';

@Injectable()
export class AnalyticsMetrics {
  readonly anomalies: Counter<'kind'>;
  readonly anomaliesPruned: Counter;
  readonly processedRows: Counter;
  readonly watermark: Gauge;
  readonly lateRows: Counter;
  readonly gapsExpired: Counter;
  readonly drift: Counter<'measure'>;
  readonly statsRequests: Counter<'cache'>;

  constructor(registry: MetricsRegistry) {
    this.anomalies = new Counter({
      name: 'quota_anomalies_total',
      help: 'Unusual quota usage detected, by kind.',
      labelNames: ['kind'],
      registers: [registry],
    });
    this.anomaliesPruned = new Counter({
      name: 'quota_anomalies_pruned_total',
      help: 'Stored anomalies deleted after QUOTA_ANOMALY_RETENTION_DAYS.',
      registers: [registry],
    });
    this.processedRows = new Counter({
      name: 'quota_analytics_processed_rows_total',
      help: 'Ledger rows folded into the stats rollups and anomaly detection.',
      registers: [registry],
    });
    this.watermark = new Gauge({
      name: 'quota_analytics_watermark_lag_seconds',
      help: 'Age of the newest ledger row the analytics processor has folded in, at its last run (0 when idle).',
      registers: [registry],
    });
    this.lateRows = new Counter({
      name: 'quota_analytics_late_rows_total',
      help: 'Ledger rows folded in after the watermark had passed their id (their transaction committed late).',
      registers: [registry],
    });
    this.gapsExpired = new Counter({
      name: 'quota_analytics_gap_ids_expired_total',
      help: 'Ledger ids no longer looked for after QUOTA_ANALYTICS_GAP_MAX_AGE_MS (rolled back, or still not committed).',
      registers: [registry],
    });
    this.drift = new Counter({
      name: 'quota_analytics_drift_total',
      help: 'Drift of quota_type_totals from members found and corrected by the reconciliation: members, or balance units (absolute, summed over types).',
      labelNames: ['measure'],
      registers: [registry],
    });
    this.statsRequests = new Counter({
      name: 'quota_stats_requests_total',
      help: 'Stats requests by cache outcome (hit, miss, bypass when fresh=true, error when the cache failed).',
      labelNames: ['cache'],
      registers: [registry],
    });
  }
}
