import type { MigrationInterface, QueryRunner } from 'typeorm';
import { dialect } from './schema-helpers';

/**
 * `members.external_id` compares byte for byte on every database, as on the embedded one (SQLite's
 * BINARY default): under MySQL's case-insensitive default collations "Member-1" and "member-1"
 * collided on the unique index. External ids are printable ASCII without spaces, so utf8mb4_bin's
 * trailing-space padding never matters. Idempotency keys need no column change: they are claimed
 * by the SHA-256 of their exact bytes (idempotency_keys.key_hash), and a replay compares the
 * stored key exactly.
 *
 * down() restores the table's default collation; it fails, as it must, while two external ids
 * differ only in case.
 */
export class ExactExternalIds1764900000000 implements MigrationInterface {
  name = 'ExactExternalIds1764900000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    if (dialect(queryRunner).isSqlite) return;
    await queryRunner.query(
      'ALTER TABLE members MODIFY external_id VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL',
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    if (dialect(queryRunner).isSqlite) return;
    await queryRunner.query('ALTER TABLE members MODIFY external_id VARCHAR(191) NOT NULL');
  }
}
