import { emptyFold, foldMemberDays, foldRows, typeChange, TypeAttribution, type LedgerRow } from './ledger-fold';

const HOUR = 3_600_000;
let nextId = 1;
function row(
  memberId: string,
  reason: string,
  delta: number,
  balanceAfter: number,
  currentType: string,
  note: string | null = null,
): LedgerRow {
  return {
    id: nextId++,
    memberId,
    delta,
    balanceAfter,
    reason,
    note,
    createdAtMs: 5 * HOUR + nextId,
    currentType,
    maxQuota: 10,
  };
}

describe('foldRows', () => {
  it('keeps members and balances per type across a membership change, and rows under the type of their time', () => {
    // Member 1 starts as "basic" (10), consumes 4, moves to "pro" (+5), consumes 2; it is "pro" now.
    const rows = [
      row('1', 'initial_grant', 10, 10, 'pro'),
      row('1', 'consumption', -4, 6, 'pro'),
      row('1', 'membership_change', 5, 11, 'pro', 'basic -> pro'),
      row('1', 'consumption', -2, 9, 'pro'),
      row('2', 'initial_grant', 7, 7, 'basic'),
    ];
    const changes = [typeChange(rows[2].id, '1', 'basic', 'pro')!];
    const fold = foldRows(emptyFold(), rows, new TypeAttribution(changes));
    expect(Object.fromEntries(fold.totals)).toEqual({
      basic: { members: 1, balance: 7 },
      pro: { members: 1, balance: 9 },
    });
    const cells = [...fold.rollups.values()].map((c) => [c.membershipType, c.reason, c.count, c.units, c.net]);
    expect(cells).toEqual(
      expect.arrayContaining([
        ['basic', 'initial_grant', 2, 17, 17],
        ['basic', 'consumption', 1, 4, -4],
        ['pro', 'membership_change', 1, 5, 5],
        ['pro', 'consumption', 1, 2, -2],
      ]),
    );
  });

  it('ignores a membership_change row without its stored types for attribution', () => {
    expect(typeChange(1, '1', null, null)).toBeNull();
    expect(typeChange(1, '1', 'a', null)).toBeNull();
    expect(typeChange(1, '1', 'a', 'b')).toEqual({ id: 1, memberId: '1', from: 'a', to: 'b' });
  });
});

describe('foldMemberDays', () => {
  const at = (memberId: string, reason: string, delta: number, createdAtMs: number): LedgerRow => ({
    ...row(memberId, reason, delta, 0, 'basic'),
    createdAtMs,
  });
  const DAY = 86_400_000;

  it('counts rows and sums signed deltas per member, UTC day and reason', () => {
    const day = 20_000 * DAY;
    const cells = foldMemberDays([
      at('1', 'consumption', -2, day),
      at('1', 'consumption', -3, day + DAY - 1),
      at('1', 'refund', 4, day + 5),
      at('1', 'consumption', -7, day + DAY),
      at('2', 'consumption', -1, day + 10),
    ]);
    expect(cells.map((c) => [c.memberId, c.dayMs, c.reason, c.count, c.units])).toEqual([
      ['1', day, 'consumption', 2, -5],
      ['1', day, 'refund', 1, 4],
      ['1', day + DAY, 'consumption', 1, -7],
      ['2', day, 'consumption', 1, -1],
    ]);
  });
});
