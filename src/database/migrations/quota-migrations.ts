import { QuotaLedger1763900200000 } from './1763900200000-QuotaLedger';
import { ExactExternalIds1764900000000 } from './1764900000000-ExactExternalIds';
import { MembershipTypeHistory1765000000000 } from './1765000000000-MembershipTypeHistory';
import { Holds1765100000000 } from './1765100000000-Holds';
import { LedgerTimeIndex1765100100000 } from './1765100100000-LedgerTimeIndex';
import type { MigrationClass } from './migration-class';

/**
 * Migrations of the quota module beyond the initial seed schema (idempotency keys, ledger guards,
 * exact external ids, membership type history as data, holds, the ledger in time order).
 */
export const QUOTA_MIGRATIONS: MigrationClass[] = [
  QuotaLedger1763900200000,
  ExactExternalIds1764900000000,
  MembershipTypeHistory1765000000000,
  Holds1765100000000,
  LedgerTimeIndex1765100100000,
];
