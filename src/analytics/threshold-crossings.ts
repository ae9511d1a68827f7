import type { LedgerRow } from './ledger-fold';

export const USAGE_THRESHOLDS = [80, 100] as const;
export type UsageThreshold = (typeof USAGE_THRESHOLDS)[number];

/**
 * Decreases that are no spending: a reset or a move to another type starts from another baseline,
 * and refunds and released holds only ever give units back.
 */
const NOT_SPENDING = new Set(['refund', 'periodic_reset', 'hold_release', 'membership_change', 'initial_grant']);

/**
 * A hold's commit is a `hold_release` of all its units and a `consumption` of the committed part:
 * together they never raise the usage (the units were counted as used when held), so its
 * consumption row crosses nothing; the hold row crossed already, if anything did.
 */
const settlesHold = (row: Pick<LedgerRow, 'reason' | 'holdId'>): boolean =>
  row.reason === 'consumption' && row.holdId !== undefined && row.holdId !== null;

/**
 * The usage thresholds (percent of max_quota) a ledger row takes the member across, upwards:
 * usage is max_quota − balance, before the row `balance_after − delta` and after it `balance_after`.
 * Each row is judged on its own, so a row folded late (found in a gap) is judged as one in order
 * would be, and a member who gets units back and spends them again crosses again. Integer
 * arithmetic: 80 % of a max_quota of 7 is reached at a usage of 5.6, i.e. 6.
 */
export function crossedThresholds(
  row: Pick<LedgerRow, 'delta' | 'balanceAfter' | 'reason' | 'holdId'>,
  maxQuota: number | null,
): UsageThreshold[] {
  if (maxQuota === null || maxQuota <= 0 || row.delta >= 0 || NOT_SPENDING.has(row.reason) || settlesHold(row)) {
    return [];
  }
  const usedBefore = maxQuota - (row.balanceAfter - row.delta);
  const usedAfter = maxQuota - row.balanceAfter;
  return USAGE_THRESHOLDS.filter((level) => usedBefore * 100 < level * maxQuota && usedAfter * 100 >= level * maxQuota);
}
