import type { MigrationInterface, QueryRunner } from 'typeorm';
import { dialect, quotedList } from './schema-helpers';

/** The ledger's reasons when it was created (later migrations extend the list). */
export const INITIAL_REASONS = [
  'initial_grant',
  'consumption',
  'refund',
  'manual_adjustment',
  'bulk_adjustment',
  'periodic_reset',
  'config_change',
  'membership_change',
];
/** SQLite integers are 64-bit; the checks hold both drivers to MySQL's signed INT range. */
const INT_MAX = 2147483647;

/** The seed's tables: quota configs per membership type, members and the quota history ledger. */
export class InitialSchema1763900000000 implements MigrationInterface {
  name = 'InitialSchema1763900000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const d = dialect(queryRunner);

    await d.createTable({
      name: 'member_quota_config',
      columns: [
        d.id(),
        { name: 'membership_type', type: 'varchar', length: '32' },
        { name: 'max_quota', type: 'int' },
        {
          name: 'reset_period',
          type: 'varchar',
          length: '16',
          default: "'none'",
        },
        { name: 'is_active', type: 'boolean', default: '1' },
        {
          name: 'description',
          type: 'varchar',
          length: '500',
          isNullable: true,
        },
        d.timestamp('created_at'),
        d.timestamp('updated_at'),
      ],
      indices: [
        {
          name: 'idx_member_quota_config_membership_type',
          columnNames: ['membership_type'],
          isUnique: true,
        },
        {
          name: 'idx_member_quota_config_is_active',
          columnNames: ['is_active'],
        },
      ],
      checks: [
        {
          name: 'chk_member_quota_config_max_quota',
          expression: `max_quota BETWEEN 0 AND ${INT_MAX}`,
        },
        {
          name: 'chk_member_quota_config_reset_period',
          expression: `reset_period IN (${quotedList(['none', 'daily', 'weekly', 'monthly'])})`,
        },
      ],
    });

    await d.createTable({
      name: 'members',
      columns: [
        d.id(),
        { name: 'external_id', type: 'varchar', length: '191' },
        { name: 'membership_type', type: 'varchar', length: '32' },
        { name: 'quota_balance', type: 'int', default: '0' },
        { name: 'is_active', type: 'boolean', default: '1' },
        d.timestamp('period_started_at', true),
        d.timestamp('created_at'),
        d.timestamp('updated_at'),
      ],
      indices: [
        {
          name: 'uq_members_external_id',
          columnNames: ['external_id'],
          isUnique: true,
        },
        {
          name: 'idx_members_membership_type',
          columnNames: ['membership_type', 'id'],
        },
      ],
      foreignKeys: [
        {
          name: 'fk_members_membership_type',
          columnNames: ['membership_type'],
          referencedTableName: 'member_quota_config',
          referencedColumnNames: ['membership_type'],
          onDelete: 'RESTRICT',
          onUpdate: 'RESTRICT',
        },
      ],
      checks: [{ name: 'chk_members_quota_balance', expression: `quota_balance BETWEEN 0 AND ${INT_MAX}` }],
    });

    await d.createTable({
      name: 'member_quota_history',
      columns: [
        d.id(),
        d.reference('member_id'),
        { name: 'delta', type: 'int' },
        { name: 'balance_after', type: 'int' },
        { name: 'reason', type: 'varchar', length: '32' },
        { name: 'actor', type: 'varchar', length: '64' },
        d.reference('operation_id', true),
        {
          name: 'idempotency_key',
          type: 'varchar',
          length: '255',
          isNullable: true,
        },
        { name: 'note', type: 'varchar', length: '500', isNullable: true },
        d.timestamp('created_at'),
      ],
      indices: [
        {
          name: 'idx_member_quota_history_member_id',
          columnNames: ['member_id'],
        },
        { name: 'idx_member_quota_history_reason', columnNames: ['reason'] },
        {
          name: 'idx_member_quota_history_created_at',
          columnNames: ['created_at'],
        },
        // A background operation touches each member at most once, so a retried chunk is a no-op.
        {
          name: 'uq_member_quota_history_operation_member',
          columnNames: ['operation_id', 'member_id'],
          isUnique: true,
        },
      ],
      foreignKeys: [
        {
          name: 'fk_member_quota_history_member',
          columnNames: ['member_id'],
          referencedTableName: 'members',
          referencedColumnNames: ['id'],
          onDelete: 'RESTRICT',
          onUpdate: 'RESTRICT',
        },
      ],
      checks: [
        {
          name: 'chk_member_quota_history_balance_after',
          expression: `balance_after BETWEEN 0 AND ${INT_MAX}`,
        },
        { name: 'chk_member_quota_history_delta', expression: `delta BETWEEN ${-INT_MAX - 1} AND ${INT_MAX}` },
        {
          name: 'chk_member_quota_history_reason',
          expression: `reason IN (${quotedList(INITIAL_REASONS)})`,
        },
      ],
    });
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('member_quota_history');
    await queryRunner.dropTable('members');
    await queryRunner.dropTable('member_quota_config');
  }
}
