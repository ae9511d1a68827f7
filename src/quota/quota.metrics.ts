import { Injectable } from '@nestjs/common';
import { Counter } from 'prom-client';
import { MetricsRegistry } from '../metrics/metrics.module';

export type ConsumptionResult =
  | 'success'
  | 'replayed'
  | 'insufficient_quota'
  | 'member_inactive'
  | 'config_inactive'
  | 'not_found'
  | 'idempotency_conflict'
  | 'error';

@Injectable()
export class QuotaMetrics {
  readonly consumptions: Counter<'membership_type' | 'result'>;
  readonly ledgerChanges: Counter<'reason'>;
  readonly idempotencyKeysPurged: Counter;

  constructor(registry: MetricsRegistry) {
    this.consumptions = new Counter({
      name: 'quota_consumptions_total',
      help: 'Consume requests, by membership type and result.',
      labelNames: ['membership_type', 'result'],
      registers: [registry],
    });
    this.ledgerChanges = new Counter({
      name: 'quota_ledger_changes_total',
      help: 'Balance changes written to the ledger, by reason.',
      labelNames: ['reason'],
      registers: [registry],
    });
    this.idempotencyKeysPurged = new Counter({
      name: 'quota_idempotency_keys_purged_total',
      help: 'Expired idempotency keys deleted.',
      registers: [registry],
    });
  }
}
