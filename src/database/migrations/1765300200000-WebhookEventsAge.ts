import { TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';

const EVENTS = 'webhook_events';
const INDEX = 'idx_webhook_events_created_at';

/**
 * The event log by age, for its retention (WEBHOOK_RETENTION_DAYS): the hourly purge reads the
 * oldest events first, a range on this index, instead of scanning the whole log.
 */
export class WebhookEventsAge1765300200000 implements MigrationInterface {
  name = 'WebhookEventsAge1765300200000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createIndex(EVENTS, new TableIndex({ name: INDEX, columnNames: ['created_at', 'id'] }));
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropIndex(EVENTS, INDEX);
  }
}
