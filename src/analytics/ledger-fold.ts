/** A ledger row as the analytics module reads it, joined with the member's current type. */
export interface LedgerRow {
  readonly id: number;
  readonly memberId: string;
  readonly delta: number;
  readonly balanceAfter: number;
  readonly reason: string;
  readonly note: string | null;
  readonly createdAtMs: number;
  /** The member's membership type now (when the row is read), not necessarily when it was written. */
  readonly currentType: string;
  readonly maxQuota: number | null;
  /** The hold a `hold`, `hold_release` or committed `consumption` row belongs to (absent: none). */
  readonly holdId?: string | null;
}

export interface TypeChange {
  readonly id: number;
  readonly memberId: string;
  readonly from: string;
  readonly to: string;
}

export interface RollupCell {
  readonly hourMs: number;
  readonly membershipType: string;
  readonly reason: string;
  count: number;
  /** Sum of |delta|: for consumption rows, the units consumed. */
  units: number;
  net: number;
}

export interface TypeTotal {
  members: number;
  balance: number;
}

const HOUR_MS = 3_600_000;

export const hourFloor = (ms: number): number => Math.floor(ms / HOUR_MS) * HOUR_MS;
export const hourCeil = (ms: number): number => Math.ceil(ms / HOUR_MS) * HOUR_MS;

/**
 * A membership_change row's stored types (`from_membership_type`, `to_membership_type`); null
 * when the row has none (an old row whose note did not say), which attribution then ignores.
 */
export function typeChange(id: number, memberId: string, from: string | null, to: string | null): TypeChange | null {
  return from && to ? { id, memberId, from, to } : null;
}

/**
 * Which membership type a row belongs to: the type the member had when it was written. That is the
 * "from" type of the member's first type change after the row, or its current type when there is
 * none; a membership_change row itself belongs to the type it moved to.
 */
export class TypeAttribution {
  private readonly byMember = new Map<string, TypeChange[]>();

  constructor(changes: readonly TypeChange[]) {
    for (const change of [...changes].sort((a, b) => a.id - b.id)) {
      const list = this.byMember.get(change.memberId) ?? [];
      list.push(change);
      this.byMember.set(change.memberId, list);
    }
  }

  typeOf(row: Pick<LedgerRow, 'id' | 'memberId' | 'currentType'>): string {
    const changes = this.byMember.get(row.memberId);
    if (!changes) return row.currentType;
    const own = changes.find((c) => c.id === row.id);
    if (own) return own.to;
    return changes.find((c) => c.id > row.id)?.from ?? row.currentType;
  }

  /** The change a row records, when it is a membership_change with its types stored. */
  changeOf(row: Pick<LedgerRow, 'id' | 'memberId'>): TypeChange | undefined {
    return this.byMember.get(row.memberId)?.find((c) => c.id === row.id);
  }
}

export interface Fold {
  readonly rollups: Map<string, RollupCell>;
  readonly totals: Map<string, TypeTotal>;
}

export function emptyFold(): Fold {
  return { rollups: new Map(), totals: new Map() };
}

function total(fold: Fold, type: string): TypeTotal {
  let t = fold.totals.get(type);
  if (!t) {
    t = { members: 0, balance: 0 };
    fold.totals.set(type, t);
  }
  return t;
}

/**
 * Adds ledger rows to hourly rollups per (hour, type, reason) and to member counts and balances per
 * type. Balances come from the ledger invariant (a member's balance is the sum of its deltas) and
 * member counts from initial_grant rows (one per member), so neither needs a scan of `members`.
 * `inWindow` limits which rows count in the rollups (all rows count in the totals).
 */
export function foldRows(
  fold: Fold,
  rows: readonly LedgerRow[],
  types: TypeAttribution,
  inWindow: (row: LedgerRow) => boolean = () => true,
): Fold {
  for (const row of rows) {
    const type = types.typeOf(row);
    const change = row.reason === 'membership_change' ? types.changeOf(row) : undefined;
    if (change) {
      const before = row.balanceAfter - row.delta;
      const from = total(fold, change.from);
      from.members -= 1;
      from.balance -= before;
      const to = total(fold, change.to);
      to.members += 1;
      to.balance += row.balanceAfter;
    } else {
      const t = total(fold, type);
      t.balance += row.delta;
      if (row.reason === 'initial_grant') t.members += 1;
    }
    if (!inWindow(row)) continue;
    const hourMs = hourFloor(row.createdAtMs);
    const key = `${hourMs}|${type}|${row.reason}`;
    let cell = fold.rollups.get(key);
    if (!cell) {
      cell = { hourMs, membershipType: type, reason: row.reason, count: 0, units: 0, net: 0 };
      fold.rollups.set(key, cell);
    }
    cell.count += 1;
    cell.units += Math.abs(row.delta);
    cell.net += row.delta;
  }
  return fold;
}

export interface MemberDayCell {
  readonly memberId: string;
  /** The UTC day's first instant. */
  readonly dayMs: number;
  readonly reason: string;
  count: number;
  /** Sum of the deltas (signed), as a statement totals them. */
  units: number;
}

const DAY_MS = 86_400_000;

export const dayFloor = (ms: number): number => Math.floor(ms / DAY_MS) * DAY_MS;
export const dayCeil = (ms: number): number => Math.ceil(ms / DAY_MS) * DAY_MS;

/** Ledger rows counted per member, UTC day and reason (the statements' rollups). */
export function foldMemberDays(rows: readonly LedgerRow[]): MemberDayCell[] {
  const cells = new Map<string, MemberDayCell>();
  for (const row of rows) {
    const dayMs = dayFloor(row.createdAtMs);
    const key = `${row.memberId}|${dayMs}|${row.reason}`;
    let cell = cells.get(key);
    if (!cell) {
      cell = { memberId: row.memberId, dayMs, reason: row.reason, count: 0, units: 0 };
      cells.set(key, cell);
    }
    cell.count += 1;
    cell.units += row.delta;
  }
  return [...cells.values()];
}
