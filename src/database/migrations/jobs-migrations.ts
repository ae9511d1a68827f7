import { Operations1763900300000 } from './1763900300000-Operations';
import { PublicOperationErrors1764900100000 } from './1764900100000-PublicOperationErrors';
import { OperationChunks1765300300000 } from './1765300300000-OperationChunks';
import type { MigrationClass } from './migration-class';

/** Migrations of the jobs module (background operations). */
export const JOBS_MIGRATIONS: MigrationClass[] = [
  Operations1763900300000,
  PublicOperationErrors1764900100000,
  OperationChunks1765300300000,
];
