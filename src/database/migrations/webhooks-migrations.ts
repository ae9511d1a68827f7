import { Webhooks1765300000000 } from './1765300000000-Webhooks';
import type { MigrationClass } from './migration-class';

/** Migrations of webhooks (subscriptions, the event log, deliveries). */
export const WEBHOOKS_MIGRATIONS: MigrationClass[] = [Webhooks1765300000000];
