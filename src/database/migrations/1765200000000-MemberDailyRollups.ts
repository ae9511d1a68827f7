import type { MigrationInterface, QueryRunner } from 'typeorm';
import { dialect } from './schema-helpers';

/**
 * Per member, UTC day and reason: how many ledger rows and the sum of their deltas (signed), so a
 * statement's totals read a day's rollup row instead of the day's ledger rows. The tail processor
 * adds every row it folds (in id order behind its watermark, and late rows found in its gaps) in
 * the same transaction as its other rollups.
 *
 * Backfilled here from the rows the processor has already folded: ids up to its watermark, except
 * those in its open gaps (it folds them when they appear). The watermark row is locked first, so
 * no processor run commits between the watermark read and the copy. Instances of the previous
 * version must not run the tail processor once this has run (they would fold rows without adding
 * them here): deploy the worker role with the migration.
 */
export class MemberDailyRollups1765200000000 implements MigrationInterface {
  name = 'MemberDailyRollups1765200000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const d = dialect(queryRunner);
    await d.createTable({
      name: 'quota_member_daily',
      columns: [
        { ...d.reference('member_id'), isPrimary: true },
        // The UTC day's first instant.
        { name: 'day_start', type: 'datetime', precision: 3, isPrimary: true },
        { name: 'reason', type: 'varchar', length: '32', isPrimary: true },
        { name: 'row_count', type: 'bigint', default: '0' },
        { name: 'units', type: 'bigint', default: '0' },
      ],
    });
    const [state] = (await queryRunner.query(
      `SELECT last_history_id FROM quota_analytics_state WHERE name = 'history_tail'${d.isSqlite ? '' : ' FOR UPDATE'}`,
    )) as Array<{ last_history_id: unknown }>;
    const watermark = Number(state?.last_history_id ?? 0);
    const day = d.isSqlite ? "substr(h.created_at, 1, 10) || ' 00:00:00.000'" : 'DATE(h.created_at)';
    // Read by primary key range on MariaDB: the shared locks INSERT ... SELECT takes stay on the
    // folded rows (append-only, nobody waits for them) and the gap before the first row after the
    // watermark, so new ledger rows, appended after it, are not held up.
    await queryRunner.query(
      `INSERT INTO quota_member_daily (member_id, day_start, reason, row_count, units)
       SELECT h.member_id, ${day}, h.reason, COUNT(*), SUM(h.delta)
         FROM member_quota_history h${d.isSqlite ? '' : ' FORCE INDEX (PRIMARY)'}
        WHERE h.id <= ?
          AND NOT EXISTS (SELECT 1 FROM quota_analytics_gaps g WHERE h.id BETWEEN g.from_id AND g.to_id)
        GROUP BY h.member_id, ${day}, h.reason`,
      [watermark],
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('quota_member_daily');
  }
}
