import type { MigrationInterface, QueryRunner } from 'typeorm';
import { appendOnlyTrigger, HISTORY_NO_UPDATE_TRIGGER } from './1763900200000-QuotaLedger';
import { dialect } from './schema-helpers';

/**
 * A `membership_change` ledger row stores the member's type before and after the change as data
 * (`from_membership_type`, `to_membership_type`; NULL on every other row) instead of leaving it
 * to be parsed back from the note. up() fills them for existing rows from the note the service
 * has always written there ("<from> -> <to>", slugs without spaces); a note of another shape
 * leaves them NULL, as the parser ignored it. The append-only trigger is lifted for the backfill
 * only. Plain ALTER TABLE on both drivers (SQLite 3.35+
 * drops a column in place), so the ledger is never copied; down() drops the columns, the notes
 * stay.
 */
export class MembershipTypeHistory1765000000000 implements MigrationInterface {
  name = 'MembershipTypeHistory1765000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    for (const column of COLUMNS) {
      await queryRunner.query(`ALTER TABLE member_quota_history ADD COLUMN ${column} VARCHAR(32) NULL`);
    }
    // The ledger is append-only (a trigger refuses every UPDATE); the backfill lifts that for
    // its one statement.
    await queryRunner.query(`DROP TRIGGER ${HISTORY_NO_UPDATE_TRIGGER.name}`);
    await queryRunner.query(
      `UPDATE member_quota_history
          SET from_membership_type = SUBSTR(note, 1, INSTR(note, ' -> ') - 1),
              to_membership_type = SUBSTR(note, INSTR(note, ' -> ') + 4)
        WHERE reason = 'membership_change' AND note LIKE '_% -> _%'
          AND LENGTH(note) - LENGTH(REPLACE(note, ' ', '')) = 2`,
    );
    await queryRunner.query(appendOnlyTrigger(dialect(queryRunner).isSqlite, HISTORY_NO_UPDATE_TRIGGER));
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    for (const column of [...COLUMNS].reverse()) {
      await queryRunner.query(`ALTER TABLE member_quota_history DROP COLUMN ${column}`);
    }
  }
}

const COLUMNS = ['from_membership_type', 'to_membership_type'] as const;
