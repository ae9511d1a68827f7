import { Injectable } from '@nestjs/common';
import { Counter, Gauge } from 'prom-client';
import { QuotaDatabase } from '../database/database';
import { MetricsRegistry } from '../metrics/metrics.module';
import { HoldsRepository } from './holds.repository';

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
  readonly holdsCreated: Counter;
  readonly holdsSettled: Counter<'outcome'>;
  readonly holdsOpen: Gauge;
  readonly unitsHeld: Gauge;

  constructor(registry: MetricsRegistry, db: QuotaDatabase, holds: HoldsRepository) {
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
    this.holdsCreated = new Counter({
      name: 'quota_holds_created_total',
      help: 'Holds made (units reserved for a caller).',
      registers: [registry],
    });
    this.holdsSettled = new Counter({
      name: 'quota_holds_settled_total',
      help: 'Holds settled, by outcome: committed, released, or expired (given back by the expiry sweep).',
      labelNames: ['outcome'],
      registers: [registry],
    });
    // Both gauges are read from the database at each scrape, so every instance reports the same,
    // deployment-wide figure (use max, not sum, across instances). A database that is away leaves
    // them out of that scrape rather than breaking it; readiness reports it.
    const openTotals = () => db.read((s) => holds.openTotals(s)).catch(() => null);
    this.holdsOpen = new Gauge({
      name: 'quota_holds_open',
      help: 'Holds not yet settled, over every member (read from the database at each scrape).',
      registers: [registry],
      async collect() {
        const open = await openTotals();
        if (open) this.set(open.count);
      },
    });
    this.unitsHeld = new Gauge({
      name: 'quota_units_held',
      help: 'Units kept out of balances by open holds, over every member (read from the database at each scrape).',
      registers: [registry],
      async collect() {
        const open = await openTotals();
        if (open) this.set(open.units);
      },
    });
  }
}
