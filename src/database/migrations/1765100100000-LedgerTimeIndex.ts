import { TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

const HISTORY = 'member_quota_history';
const INDEX = 'idx_member_quota_history_member_time';

/**
 * Balances in time: one member's ledger in time order, so a balance at an instant and a
 * statement's totals answer from the index whatever the member's history length.
 *
 * - `(member_id, created_at, id)` first: the last row at or before an instant is one dive for
 *   the latest created_at (MAX on the index prefix) and one for the highest id at it, without a
 *   sort (see BalancesInTimeRepository);
 * - then `reason, delta`: a statement's totals (`GROUP BY reason` over a time window) read only
 *   the index (a covering range scan, no row lookups).
 *
 * InnoDB appends the primary key to every secondary index; naming `id` here only puts it before
 * `reason`. The seed's `idx_member_quota_history_member_id` stays: a member's history newest
 * first (`member_id = ? ORDER BY id DESC`, the history list and its cursor) reads it in order,
 * which this index, ordered by time, cannot.
 */
export class LedgerTimeIndex1765100100000 implements MigrationInterface {
  name = 'LedgerTimeIndex1765100100000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createIndex(
      HISTORY,
      new TableIndex({ name: INDEX, columnNames: ['member_id', 'created_at', 'id', 'reason', 'delta'] }),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropIndex(HISTORY, INDEX);
  }
}
