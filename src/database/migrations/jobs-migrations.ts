import type { MigrationClass } from './migration-class';

/** Migrations of the jobs module (background operations). */
export const JOBS_MIGRATIONS: MigrationClass[] = [];
