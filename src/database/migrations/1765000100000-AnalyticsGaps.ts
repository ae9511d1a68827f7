import type { MigrationInterface, QueryRunner } from 'typeorm';
import { dialect } from './schema-helpers';

/**
 * Ranges of ledger ids the tail processor's watermark passed while no row with those ids was
 * visible: ids of a transaction still open (InnoDB hands out auto-increment ids before commit) or
 * rolled back. The processor looks into them again on every run, folds in the rows that have
 * committed since, and gives a range up after QUOTA_ANALYTICS_GAP_MAX_AGE_MS.
 */
export class AnalyticsGaps1765000100000 implements MigrationInterface {
  name = 'AnalyticsGaps1765000100000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const d = dialect(queryRunner);
    await d.createTable({
      name: 'quota_analytics_gaps',
      columns: [
        { name: 'from_id', type: 'bigint', isPrimary: true },
        { name: 'to_id', type: 'bigint' },
        // When the watermark passed the range (database clock); a split range keeps it.
        d.timestamp('seen_at'),
      ],
    });
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('quota_analytics_gaps');
  }
}
