import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Failed operations used to store the driver's own message (host, port, SQL) in
 * `quota_operations.error`, which admins read through the API. New failures store a public reason;
 * this replaces what older versions stored. down() cannot bring the old text back and leaves the
 * replacement in place.
 */
export class PublicOperationErrors1764900100000 implements MigrationInterface {
  name = 'PublicOperationErrors1764900100000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(
      "UPDATE quota_operations SET error = 'failed; the service log of that time has the details' WHERE error IS NOT NULL",
    );
  }

  async down(): Promise<void> {
    // Nothing to undo: the original messages are gone on purpose.
  }
}
