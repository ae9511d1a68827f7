import { AuthSchema1763900100000 } from './1763900100000-AuthSchema';
import type { MigrationClass } from './migration-class';

/** Migrations of the auth module (users, audit log). */
export const AUTH_MIGRATIONS: MigrationClass[] = [AuthSchema1763900100000];
