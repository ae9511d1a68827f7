import type { MigrationInterface, QueryRunner, TableColumnOptions } from 'typeorm';
import { dialect } from './schema-helpers';

const bigint = (name: string, nullable = false): TableColumnOptions =>
  nullable ? { name, type: 'bigint', isNullable: true } : { name, type: 'bigint', default: '0' };
const double = (name: string, nullable = false): TableColumnOptions =>
  nullable ? { name, type: 'double', isNullable: true } : { name, type: 'double', default: '0' };

/**
 * The analytics module's own tables, fed asynchronously from the ledger by the tail processor (the
 * consume path never writes them): hourly rollups and per-type totals for the stats endpoint, the
 * per-member and per-type state of anomaly detection, and the detected anomalies.
 */
export class Analytics1763900400000 implements MigrationInterface {
  name = 'Analytics1763900400000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const d = dialect(queryRunner);

    // One row per processor; the tail processor locks it, so one instance processes at a time.
    await d.createTable({
      name: 'quota_analytics_state',
      columns: [
        { name: 'name', type: 'varchar', length: '32', isPrimary: true },
        bigint('last_history_id'),
        d.timestamp('updated_at'),
      ],
    });
    await queryRunner.query("INSERT INTO quota_analytics_state (name, last_history_id) VALUES ('history_tail', 0)");

    await d.createTable({
      name: 'quota_stats_hourly',
      columns: [
        { name: 'hour_start', type: 'datetime', precision: 3, isPrimary: true },
        { name: 'membership_type', type: 'varchar', length: '32', isPrimary: true },
        { name: 'reason', type: 'varchar', length: '32', isPrimary: true },
        bigint('row_count'),
        bigint('units'),
        bigint('net_delta'),
      ],
    });

    await d.createTable({
      name: 'quota_type_totals',
      columns: [
        { name: 'membership_type', type: 'varchar', length: '32', isPrimary: true },
        bigint('members'),
        bigint('balance'),
        d.timestamp('updated_at'),
      ],
    });

    await d.createTable({
      name: 'quota_member_usage',
      columns: [
        { ...d.reference('member_id'), isPrimary: true },
        bigint('bucket_start_ms'),
        bigint('bucket_units'),
        double('ewma_mean'),
        double('ewma_var'),
        { name: 'windows_seen', type: 'int', default: '0' },
        bigint('spike_bucket_ms'),
        bigint('cohort_bucket_ms'),
        bigint('burst_start_ms'),
        { name: 'burst_count', type: 'int', default: '0' },
        { name: 'threshold_level', type: 'int', default: '0' },
        bigint('period_key'),
        d.timestamp('updated_at'),
      ],
    });

    await d.createTable({
      name: 'quota_cohort_usage',
      columns: [
        { name: 'membership_type', type: 'varchar', length: '32', isPrimary: true },
        double('ewma_mean'),
        bigint('samples'),
        d.timestamp('updated_at'),
      ],
    });

    await d.createTable({
      name: 'quota_anomalies',
      columns: [
        d.id(),
        d.reference('member_id'),
        { name: 'membership_type', type: 'varchar', length: '32' },
        { name: 'kind', type: 'varchar', length: '32' },
        // member, kind and window/period: a batch processed twice can never store an event twice.
        { name: 'dedupe_key', type: 'varchar', length: '191' },
        { name: 'occurred_at', type: 'datetime', precision: 3 },
        d.timestamp('detected_at'),
        double('observed'),
        double('expected', true),
        { name: 'detail', type: 'varchar', length: '500', isNullable: true },
      ],
      indices: [
        { name: 'uq_quota_anomalies_dedupe_key', columnNames: ['dedupe_key'], isUnique: true },
        { name: 'idx_quota_anomalies_detected_at', columnNames: ['detected_at'] },
        { name: 'idx_quota_anomalies_member', columnNames: ['member_id'] },
      ],
    });
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    for (const table of [
      'quota_anomalies',
      'quota_cohort_usage',
      'quota_member_usage',
      'quota_type_totals',
      'quota_stats_hourly',
      'quota_analytics_state',
    ]) {
      await queryRunner.dropTable(table);
    }
  }
}
