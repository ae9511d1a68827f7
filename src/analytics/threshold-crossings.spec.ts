import { crossedThresholds } from './threshold-crossings';

const row = (delta: number, balanceAfter: number, reason = 'consumption') => ({ delta, balanceAfter, reason });

describe('crossedThresholds', () => {
  it('gives each level a decrease takes the usage across, once', () => {
    expect(crossedThresholds(row(-8, 2), 10)).toEqual([80]);
    expect(crossedThresholds(row(-1, 1), 10)).toEqual([]);
    expect(crossedThresholds(row(-1, 0), 10)).toEqual([100]);
    // 70 % to 100 % in one row: both levels.
    expect(crossedThresholds(row(-3, 0), 10)).toEqual([80, 100]);
    // A balance above max_quota (granted extra) spends from a negative usage.
    expect(crossedThresholds(row(-3, 12), 10)).toEqual([]);
    expect(crossedThresholds(row(-2, 8), 10)).toEqual([]);
  });

  it('counts a level reached exactly, and rounds partial units up', () => {
    expect(crossedThresholds(row(-4, 6), 20)).toEqual([]);
    expect(crossedThresholds(row(-2, 4), 20)).toEqual([80]);
    // max 7: 80 % is 5.6 units, so a usage of 5 is below and 6 is past it.
    expect(crossedThresholds(row(-5, 2), 7)).toEqual([]);
    expect(crossedThresholds(row(-1, 1), 7)).toEqual([80]);
  });

  it('ignores increases, refunds, resets, type changes and configs without a positive max_quota', () => {
    expect(crossedThresholds(row(5, 5), 10)).toEqual([]);
    expect(crossedThresholds(row(-9, 1, 'periodic_reset'), 10)).toEqual([]);
    expect(crossedThresholds(row(-9, 1, 'membership_change'), 10)).toEqual([]);
    expect(crossedThresholds(row(-9, 1, 'refund'), 10)).toEqual([]);
    expect(crossedThresholds(row(-9, 1), 0)).toEqual([]);
    expect(crossedThresholds(row(-9, 1), null)).toEqual([]);
  });

  it("ignores a hold's committed consumption: the hold row counted those units already", () => {
    expect(crossedThresholds({ ...row(-9, 1), holdId: '4' }, 10)).toEqual([]);
    expect(crossedThresholds({ ...row(-9, 1), holdId: null }, 10)).toEqual([80]);
  });

  it('counts every kind of spending: holds and negative adjustments too', () => {
    for (const reason of ['hold', 'manual_adjustment', 'bulk_adjustment', 'config_change']) {
      expect(crossedThresholds(row(-10, 0, reason), 10)).toEqual([80, 100]);
    }
  });
});
