import { Maintenance1765300100000 } from './1765300100000-Maintenance';
import type { MigrationClass } from './migration-class';

/** Migrations of the write freeze (maintenance mode). */
export const MAINTENANCE_MIGRATIONS: MigrationClass[] = [Maintenance1765300100000];
