import { InitialSchema1763900000000 } from './1763900000000-InitialSchema';
import { ANALYTICS_MIGRATIONS } from './analytics-migrations';
import { AUTH_MIGRATIONS } from './auth-migrations';
import { JOBS_MIGRATIONS } from './jobs-migrations';
import { MAINTENANCE_MIGRATIONS } from './maintenance-migrations';
import type { MigrationClass } from './migration-class';
import { QUOTA_MIGRATIONS } from './quota-migrations';
import { WEBHOOKS_MIGRATIONS } from './webhooks-migrations';

/**
 * Every migration; listed here so the built service and the CLI need no file globbing. TypeORM
 * orders them by their timestamp.
 */
export const MIGRATIONS: MigrationClass[] = [
  InitialSchema1763900000000,
  ...AUTH_MIGRATIONS,
  ...QUOTA_MIGRATIONS,
  ...JOBS_MIGRATIONS,
  ...ANALYTICS_MIGRATIONS,
  ...WEBHOOKS_MIGRATIONS,
  ...MAINTENANCE_MIGRATIONS,
];
