import type { MigrationClass } from './migration-class';

/** Migrations of the auth module (users, audit log). */
export const AUTH_MIGRATIONS: MigrationClass[] = [];
