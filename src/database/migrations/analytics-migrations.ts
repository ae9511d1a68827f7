import { Analytics1763900400000 } from './1763900400000-Analytics';
import type { MigrationClass } from './migration-class';

/** Migrations of the analytics module (stats rollups, anomalies). */
export const ANALYTICS_MIGRATIONS: MigrationClass[] = [Analytics1763900400000];
