import { QuotaLedger1763900200000 } from './1763900200000-QuotaLedger';
import type { MigrationClass } from './migration-class';

/** Migrations of the quota module beyond the initial seed schema (idempotency keys, ledger guards). */
export const QUOTA_MIGRATIONS: MigrationClass[] = [QuotaLedger1763900200000];
