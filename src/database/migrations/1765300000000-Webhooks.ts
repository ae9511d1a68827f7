import type { MigrationInterface, QueryRunner } from 'typeorm';
import { dialect, quotedList } from './schema-helpers';

/** The event types a subscription may name (contract §12); kept here as the migration's own list. */
export const WEBHOOK_EVENT_TYPES = [
  'anomaly.detected',
  'quota.threshold_reached',
  'operation.completed',
  'operation.failed',
  'hold.expired',
  'webhook.test',
] as const;

/**
 * Webhooks: subscriptions (the event types each receives, the secret that signs for it, and the
 * previous one while a rotation overlaps), the durable event log (each event with
 * what caused it, and the exact body every attempt sends), and one delivery per subscription and
 * event, which workers claim with a lease so that no two send it at the same time.
 *
 * `idx_webhook_deliveries_due` is what the workers read (pending deliveries by next attempt);
 * `idx_webhook_deliveries_subscription` a subscription's delivery log, newest first.
 */
export class Webhooks1765300000000 implements MigrationInterface {
  name = 'Webhooks1765300000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const d = dialect(queryRunner);
    await d.createTable({
      name: 'webhook_subscriptions',
      columns: [
        d.id(),
        { name: 'url', type: 'varchar', length: '2048' },
        { name: 'description', type: 'varchar', length: '500', isNullable: true },
        { name: 'is_active', type: 'boolean', default: '1' },
        // The event types it receives, comma-separated (each one of WEBHOOK_EVENT_TYPES).
        { name: 'event_types', type: 'varchar', length: '512' },
        // `whsec_` + base64 of the key bytes; the service needs it in the clear to sign.
        { name: 'secret', type: 'varchar', length: '128' },
        // The secret before the last rotation: it signs too until previous_secret_expires_at.
        { name: 'previous_secret', type: 'varchar', length: '128', isNullable: true },
        d.timestamp('previous_secret_expires_at', true),
        { name: 'created_by', type: 'varchar', length: '64' },
        d.timestamp('created_at'),
        d.timestamp('updated_at'),
      ],
    });
    await d.createTable({
      name: 'webhook_events',
      columns: [
        d.id(),
        // The `webhook-id` every attempt of every delivery of this event sends (msg_...).
        { name: 'uid', type: 'varchar', length: '40' },
        { name: 'type', type: 'varchar', length: '64' },
        // What caused it, as `<kind>:<id>` (anomaly:12, operation:7, hold:3, history:991, webhook:2).
        { name: 'source', type: 'varchar', length: '64', isNullable: true },
        // The body as sent, byte for byte: {"type","timestamp","data"}.
        { name: 'body', type: 'text' },
        d.timestamp('created_at'),
      ],
      indices: [
        { name: 'uq_webhook_events_uid', columnNames: ['uid'], isUnique: true },
        { name: 'idx_webhook_events_source', columnNames: ['source'] },
      ],
      checks: [{ name: 'chk_webhook_events_type', expression: `type IN (${quotedList(WEBHOOK_EVENT_TYPES)})` }],
    });
    await d.createTable({
      name: 'webhook_deliveries',
      columns: [
        d.id(),
        d.reference('subscription_id'),
        d.reference('event_id'),
        { name: 'status', type: 'varchar', length: '16', default: "'pending'" },
        { name: 'attempts', type: 'int', default: '0' },
        { name: 'last_status_code', type: 'int', isNullable: true },
        // Our own words for the last failure (timeout, refused destination, HTTP 500, ...).
        { name: 'last_error', type: 'varchar', length: '200', isNullable: true },
        // NULL once delivered or failed for good.
        d.timestamp('next_attempt_at', true),
        // A worker's lease: while it lasts, no other worker sends this delivery.
        d.timestamp('claimed_until', true),
        { name: 'claimed_by', type: 'varchar', length: '64', isNullable: true },
        d.timestamp('created_at'),
        d.timestamp('updated_at'),
        d.timestamp('delivered_at', true),
      ],
      indices: [
        { name: 'idx_webhook_deliveries_due', columnNames: ['status', 'next_attempt_at'] },
        { name: 'idx_webhook_deliveries_subscription', columnNames: ['subscription_id', 'id'] },
        { name: 'idx_webhook_deliveries_event', columnNames: ['event_id'] },
      ],
      foreignKeys: [
        {
          name: 'fk_webhook_deliveries_subscription',
          columnNames: ['subscription_id'],
          referencedTableName: 'webhook_subscriptions',
          referencedColumnNames: ['id'],
          onDelete: 'CASCADE',
          onUpdate: 'RESTRICT',
        },
        {
          name: 'fk_webhook_deliveries_event',
          columnNames: ['event_id'],
          referencedTableName: 'webhook_events',
          referencedColumnNames: ['id'],
          onDelete: 'CASCADE',
          onUpdate: 'RESTRICT',
        },
      ],
      checks: [
        {
          name: 'chk_webhook_deliveries_status',
          expression: `status IN (${quotedList(['pending', 'delivered', 'failed'])})`,
        },
      ],
    });
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('webhook_deliveries');
    await queryRunner.dropTable('webhook_events');
    await queryRunner.dropTable('webhook_subscriptions');
  }
}
