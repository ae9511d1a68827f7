import type { MigrationInterface, QueryRunner } from 'typeorm';
import { dialect, quotedList } from './schema-helpers';

/**
 * Background operations (bulk adjustments, config propagation, periodic resets): the durable
 * record written before anything is queued, with progress and a resume cursor; and the explicit
 * member lists of bulk adjustments, which workers read in chunks instead of holding them.
 */
export class Operations1763900300000 implements MigrationInterface {
  name = 'Operations1763900300000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const d = dialect(queryRunner);
    await d.createTable({
      name: 'quota_operations',
      columns: [
        d.id(),
        { name: 'kind', type: 'varchar', length: '32' },
        { name: 'status', type: 'varchar', length: '16', default: "'queued'" },
        // member_ids (rows in quota_operation_members) or membership_type
        { name: 'selection', type: 'varchar', length: '16' },
        { name: 'membership_type', type: 'varchar', length: '32', isNullable: true },
        // delta: shift by value, floored at 0; set: every member gets value
        { name: 'mode', type: 'varchar', length: '8' },
        { name: 'value', type: 'int' },
        { name: 'reason', type: 'varchar', length: '32' },
        { name: 'note', type: 'varchar', length: '500', isNullable: true },
        { name: 'payload', type: 'text' },
        { name: 'total', type: 'int', default: '0' },
        { name: 'processed', type: 'int', default: '0' },
        { name: 'changed', type: 'int', default: '0' },
        { name: 'failed', type: 'int', default: '0' },
        d.reference('last_member_id'),
        { name: 'requested_by', type: 'varchar', length: '64' },
        // sha256 of caller + Idempotency-Key; NULLed when the key expires so it can be reused
        { name: 'dedupe_key', type: 'varchar', length: '64', isNullable: true },
        { name: 'request_hash', type: 'varchar', length: '64', isNullable: true },
        d.reference('config_id', true),
        { name: 'period_key', type: 'varchar', length: '40', isNullable: true },
        d.timestamp('period_started_at', true),
        { name: 'cancel_requested', type: 'boolean', default: '0' },
        { name: 'attempts', type: 'int', default: '0' },
        { name: 'error', type: 'varchar', length: '1000', isNullable: true },
        d.timestamp('created_at'),
        d.timestamp('updated_at'),
        d.timestamp('started_at', true),
        d.timestamp('finished_at', true),
      ],
      indices: [
        { name: 'uq_quota_operations_dedupe_key', columnNames: ['dedupe_key'], isUnique: true },
        // One periodic reset per config and period, however many schedulers ask for it.
        { name: 'uq_quota_operations_config_period', columnNames: ['config_id', 'period_key'], isUnique: true },
        { name: 'idx_quota_operations_status', columnNames: ['status', 'id'] },
        { name: 'idx_quota_operations_kind', columnNames: ['kind', 'id'] },
      ],
      checks: [
        {
          name: 'chk_quota_operations_kind',
          expression: `kind IN (${quotedList(['bulk_adjust', 'config_propagation', 'periodic_reset'])})`,
        },
        {
          name: 'chk_quota_operations_status',
          expression: `status IN (${quotedList(['queued', 'running', 'completed', 'failed', 'cancelled'])})`,
        },
        {
          name: 'chk_quota_operations_selection',
          expression: `selection IN (${quotedList(['member_ids', 'membership_type'])})`,
        },
        { name: 'chk_quota_operations_mode', expression: `mode IN (${quotedList(['delta', 'set'])})` },
      ],
    });

    await d.createTable({
      name: 'quota_operation_members',
      columns: [
        { ...d.reference('operation_id'), isPrimary: true },
        { ...d.reference('member_id'), isPrimary: true },
      ],
      foreignKeys: [
        {
          name: 'fk_quota_operation_members_operation',
          columnNames: ['operation_id'],
          referencedTableName: 'quota_operations',
          referencedColumnNames: ['id'],
          onDelete: 'CASCADE',
          onUpdate: 'RESTRICT',
        },
      ],
    });
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('quota_operation_members');
    await queryRunner.dropTable('quota_operations');
  }
}
