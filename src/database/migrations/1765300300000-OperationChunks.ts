import type { MigrationInterface, QueryRunner } from 'typeorm';
import { dialect, quotedList } from './schema-helpers';

/**
 * The chunks of a background operation: member id ranges `(from_member_id, to_member_id]` planned
 * when the operation starts (the last range open-ended, `to_member_id` NULL, so members created
 * during the run are still covered). Runners of every worker claim pending chunks with a lease
 * (`claimed_until`, `claimed_by`) and mark each done, with its counts, in the transaction that
 * applies it; `claimed_by` stays on a done chunk to say which runner did it.
 *
 * `idx_quota_operation_chunks_claim` is what the claim reads: an operation's pending chunks in
 * member order.
 */
export class OperationChunks1765300300000 implements MigrationInterface {
  name = 'OperationChunks1765300300000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const d = dialect(queryRunner);
    await d.createTable({
      name: 'quota_operation_chunks',
      columns: [
        d.id(),
        d.reference('operation_id'),
        // Members with ids above this one...
        d.reference('from_member_id'),
        // ...up to and including this one; NULL: no upper bound.
        d.reference('to_member_id', true),
        { name: 'status', type: 'varchar', length: '8', default: "'pending'" },
        // How many times a runner claimed it.
        { name: 'attempts', type: 'int', default: '0' },
        d.timestamp('claimed_until', true),
        { name: 'claimed_by', type: 'varchar', length: '64', isNullable: true },
        { name: 'processed', type: 'int', default: '0' },
        { name: 'changed', type: 'int', default: '0' },
        d.timestamp('created_at'),
        d.timestamp('updated_at'),
        d.timestamp('finished_at', true),
      ],
      indices: [
        {
          name: 'idx_quota_operation_chunks_claim',
          columnNames: ['operation_id', 'status', 'from_member_id'],
        },
      ],
      foreignKeys: [
        {
          name: 'fk_quota_operation_chunks_operation',
          columnNames: ['operation_id'],
          referencedTableName: 'quota_operations',
          referencedColumnNames: ['id'],
          onDelete: 'CASCADE',
          onUpdate: 'RESTRICT',
        },
      ],
      checks: [
        { name: 'chk_quota_operation_chunks_status', expression: `status IN (${quotedList(['pending', 'done'])})` },
      ],
    });
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('quota_operation_chunks');
  }
}
