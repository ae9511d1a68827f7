import { TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';
import { dialect } from './schema-helpers';

const HISTORY = 'member_quota_history';
const APPEND_ONLY_MESSAGE = 'member_quota_history is append-only';
const TRIGGERS = [
  { name: 'trg_member_quota_history_no_update', event: 'UPDATE' },
  { name: 'trg_member_quota_history_no_delete', event: 'DELETE' },
] as const;

export const HISTORY_NO_UPDATE_TRIGGER = TRIGGERS[0];
export const APPEND_ONLY_TRIGGERS = TRIGGERS;

/** The statement that creates one of the ledger's append-only triggers. */
export function appendOnlyTrigger(isSqlite: boolean, trigger: (typeof TRIGGERS)[number]): string {
  return isSqlite
    ? `CREATE TRIGGER ${trigger.name} BEFORE ${trigger.event} ON ${HISTORY} BEGIN SELECT RAISE(ABORT, '${APPEND_ONLY_MESSAGE}'); END`
    : `CREATE TRIGGER ${trigger.name} BEFORE ${trigger.event} ON ${HISTORY} FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '${APPEND_ONLY_MESSAGE}'`;
}

/**
 * Idempotency keys for consume, refund and adjust; an index that finds the history row a key
 * produced (replays rebuild the first answer from it); and database triggers that refuse any
 * UPDATE or DELETE on the ledger, so even a stray manual query cannot rewrite history.
 */
export class QuotaLedger1763900200000 implements MigrationInterface {
  name = 'QuotaLedger1763900200000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const d = dialect(queryRunner);

    await d.createTable({
      name: 'idempotency_keys',
      columns: [
        // sha256 of caller + key: keys are scoped per caller and the raw key never needs an index.
        { name: 'key_hash', type: 'varchar', length: '64', isPrimary: true },
        { name: 'scope', type: 'varchar', length: '64' },
        // sha256 of the operation, the member and the canonical body: a reuse with another body is refused.
        { name: 'request_hash', type: 'varchar', length: '64' },
        d.reference('member_id'),
        d.timestamp('created_at'),
        { name: 'expires_at', type: 'datetime', precision: 3 },
      ],
      indices: [{ name: 'idx_idempotency_keys_expires_at', columnNames: ['expires_at'] }],
    });

    await queryRunner.createIndex(
      HISTORY,
      new TableIndex({
        name: 'idx_member_quota_history_member_idempotency',
        columnNames: ['member_id', 'idempotency_key'],
      }),
    );

    for (const trigger of TRIGGERS) await queryRunner.query(appendOnlyTrigger(d.isSqlite, trigger));
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    for (const trigger of TRIGGERS) {
      await queryRunner.query(`DROP TRIGGER IF EXISTS ${trigger.name}`);
    }
    await queryRunner.dropIndex(HISTORY, 'idx_member_quota_history_member_idempotency');
    await queryRunner.dropTable('idempotency_keys');
  }
}
