import { Webhooks1765300000000 } from './1765300000000-Webhooks';
import { WebhookEventsAge1765300200000 } from './1765300200000-WebhookEventsAge';
import type { MigrationClass } from './migration-class';

/** Migrations of webhooks (subscriptions, the event log, deliveries, the log's retention). */
export const WEBHOOKS_MIGRATIONS: MigrationClass[] = [Webhooks1765300000000, WebhookEventsAge1765300200000];
