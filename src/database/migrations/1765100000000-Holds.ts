import { TableCheck, type MigrationInterface, type QueryRunner } from 'typeorm';
import { APPEND_ONLY_TRIGGERS, appendOnlyTrigger } from './1763900200000-QuotaLedger';
import { INITIAL_REASONS } from './1763900000000-InitialSchema';
import { dialect, quotedList } from './schema-helpers';

const HISTORY = 'member_quota_history';
const REASON_CHECK = 'chk_member_quota_history_reason';
const REASONS_BEFORE = INITIAL_REASONS;
const REASONS_AFTER = [...REASONS_BEFORE, 'hold', 'hold_release'];
const INT_MAX = 2147483647;

/**
 * Holds (reserve, then commit or release): the `quota_holds` table; `members.quota_held`, the
 * units the member's open holds keep (a reset leaves them out of the new balance, and reading it
 * never touches the holds table); `member_quota_history.hold_id`, the hold a `hold`,
 * `hold_release` or committed `consumption` row belongs to; and the two new reasons in the
 * ledger's reason check.
 *
 * The index `idx_quota_holds_status_expires` is what the expiry sweep reads (open holds past their
 * time), `idx_quota_holds_member` what a member's list and the statement's `held` read.
 *
 * SQLite cannot alter a CHECK in place, so there the ledger table is rebuilt (TypeORM copies it),
 * and its append-only triggers, which go with the old table, are created again.
 */
export class Holds1765100000000 implements MigrationInterface {
  name = 'Holds1765100000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const d = dialect(queryRunner);
    await d.createTable({
      name: 'quota_holds',
      columns: [
        d.id(),
        d.reference('member_id'),
        { name: 'amount', type: 'int' },
        { name: 'status', type: 'varchar', length: '16', default: "'held'" },
        { name: 'committed_amount', type: 'int', isNullable: true },
        { name: 'released_amount', type: 'int', isNullable: true },
        { name: 'note', type: 'varchar', length: '500', isNullable: true },
        // The user that made the hold: it (and admins) may settle it.
        { name: 'created_by', type: 'varchar', length: '64' },
        d.timestamp('created_at'),
        { name: 'expires_at', type: 'datetime', precision: 3 },
        d.timestamp('settled_at', true),
      ],
      indices: [
        { name: 'idx_quota_holds_status_expires', columnNames: ['status', 'expires_at'] },
        // Also the foreign key's index: it must hold no column a settlement changes. InnoDB checks
        // the parent row (a shared lock on the member) whenever an entry of the foreign key's index
        // changes, and two settlements of one member would then deadlock upgrading it.
        { name: 'idx_quota_holds_member', columnNames: ['member_id', 'created_at'] },
      ],
      foreignKeys: [
        {
          name: 'fk_quota_holds_member',
          columnNames: ['member_id'],
          referencedTableName: 'members',
          referencedColumnNames: ['id'],
          onDelete: 'RESTRICT',
          onUpdate: 'RESTRICT',
        },
      ],
      checks: [
        { name: 'chk_quota_holds_amount', expression: `amount BETWEEN 1 AND ${INT_MAX}` },
        {
          name: 'chk_quota_holds_status',
          expression: `status IN (${quotedList(['held', 'committed', 'released', 'expired'])})`,
        },
      ],
    });

    if (d.isSqlite) {
      await queryRunner.query(
        `ALTER TABLE members ADD COLUMN quota_held INTEGER NOT NULL DEFAULT 0 CHECK (quota_held BETWEEN 0 AND ${INT_MAX})`,
      );
    } else {
      await queryRunner.query(
        `ALTER TABLE members ADD COLUMN quota_held INT NOT NULL DEFAULT 0,
           ADD CONSTRAINT chk_members_quota_held CHECK (quota_held BETWEEN 0 AND ${INT_MAX})`,
      );
    }
    await queryRunner.query(
      `ALTER TABLE ${HISTORY} ADD COLUMN hold_id ${d.isSqlite ? 'INTEGER' : 'BIGINT UNSIGNED'} NULL`,
    );
    await this.replaceReasonCheck(queryRunner, REASONS_AFTER);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await this.replaceReasonCheck(queryRunner, REASONS_BEFORE);
    await queryRunner.query(`ALTER TABLE ${HISTORY} DROP COLUMN hold_id`);
    if (!dialect(queryRunner).isSqlite) {
      await queryRunner.query('ALTER TABLE members DROP CONSTRAINT chk_members_quota_held');
    }
    await queryRunner.query('ALTER TABLE members DROP COLUMN quota_held');
    await queryRunner.dropTable('quota_holds');
  }

  private async replaceReasonCheck(queryRunner: QueryRunner, reasons: readonly string[]): Promise<void> {
    const expression = `reason IN (${quotedList(reasons)})`;
    if (!dialect(queryRunner).isSqlite) {
      await queryRunner.query(`ALTER TABLE ${HISTORY} DROP CONSTRAINT ${REASON_CHECK}`);
      await queryRunner.query(`ALTER TABLE ${HISTORY} ADD CONSTRAINT ${REASON_CHECK} CHECK (${expression})`);
      return;
    }
    // Each call rebuilds the table on SQLite; the triggers do not survive it.
    // The table as it is now (not TypeORM's cached copy, which misses columns added by plain SQL).
    await queryRunner.dropCheckConstraint((await queryRunner.getTable(HISTORY))!, REASON_CHECK);
    await queryRunner.createCheckConstraint(
      (await queryRunner.getTable(HISTORY))!,
      new TableCheck({ name: REASON_CHECK, expression }),
    );
    for (const trigger of APPEND_ONLY_TRIGGERS) {
      await queryRunner.query(`DROP TRIGGER IF EXISTS ${trigger.name}`);
      await queryRunner.query(appendOnlyTrigger(true, trigger));
    }
  }
}
