import { Analytics1763900400000 } from './1763900400000-Analytics';
import { AnalyticsGaps1765000100000 } from './1765000100000-AnalyticsGaps';
import { MemberDailyRollups1765200000000 } from './1765200000000-MemberDailyRollups';
import type { MigrationClass } from './migration-class';

/**
 * Migrations of the analytics module (stats rollups, anomalies, ledger ids to look into again,
 * per-member daily rollups for statements).
 */
export const ANALYTICS_MIGRATIONS: MigrationClass[] = [
  Analytics1763900400000,
  AnalyticsGaps1765000100000,
  MemberDailyRollups1765200000000,
];
