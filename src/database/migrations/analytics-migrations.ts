import type { MigrationClass } from './migration-class';

/** Migrations of the analytics module (stats rollups, anomalies). */
export const ANALYTICS_MIGRATIONS: MigrationClass[] = [];
