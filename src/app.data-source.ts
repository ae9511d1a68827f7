import type { DataSourceOptions } from 'typeorm';
import { ANALYTICS_ENTITIES } from './analytics/entities';
import { AUTH_ENTITIES } from './auth/entities';
import type { DatabaseConfig } from './config/app-config';
import { buildDataSourceOptions } from './database/data-source-options';
import { MIGRATIONS } from './database/migrations';
import { JOBS_ENTITIES } from './jobs/entities';
import { QUOTA_ENTITIES } from './quota/entities';

/** Every module's entities, composed here at the top so the database layer imports none of them. */
export const ENTITIES = [...QUOTA_ENTITIES, ...AUTH_ENTITIES, ...JOBS_ENTITIES, ...ANALYTICS_ENTITIES];

/** The service's DataSource options: used by the app module, the CLI and ormconfig.ts (the TypeORM CLI). */
export function appDataSourceOptions(database: DatabaseConfig, migrationsRun: boolean): DataSourceOptions {
  return buildDataSourceOptions(database, migrationsRun, { entities: ENTITIES, migrations: MIGRATIONS });
}
