import type { MigrationInterface, QueryRunner } from 'typeorm';
import { dialect } from './schema-helpers';

/**
 * The write freeze (maintenance mode, contract §15): one row, id 1, that every instance polls.
 * It lives in the database so that every instance obeys the same switch, and so that the CLI can
 * flip it while no instance runs. Backups leave this table out (docs/operations.md): restoring an
 * old copy of it in the middle of a restore would unfreeze every instance. So a restore of a dump
 * made before this migration brings back a migrations table without it while the switch table
 * survives: running the migration again then keeps the table and its row as they are.
 */
export class Maintenance1765300100000 implements MigrationInterface {
  name = 'Maintenance1765300100000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const d = dialect(queryRunner);
    if (await queryRunner.hasTable('quota_maintenance')) return;
    await d.createTable({
      name: 'quota_maintenance',
      columns: [
        { name: 'id', type: 'int', isPrimary: true },
        { name: 'read_only', type: 'boolean', default: '0' },
        { name: 'reason', type: 'varchar', length: '500', isNullable: true },
        // When the current state (read-only or writable) began; null until the first change.
        d.timestamp('since', true),
        // Who made the last change: a user's email, or "system (cli)".
        { name: 'changed_by', type: 'varchar', length: '191', isNullable: true },
        d.timestamp('updated_at'),
      ],
      checks: [{ name: 'chk_quota_maintenance_single_row', expression: 'id = 1' }],
    });
    await queryRunner.query('INSERT INTO quota_maintenance (id, read_only) VALUES (1, 0)');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('quota_maintenance');
  }
}
