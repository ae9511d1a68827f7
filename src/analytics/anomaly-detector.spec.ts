import type { AnomalyConfig } from '../config/app-config';
import { AnomalyDetector, newCohortUsage, newMemberUsage } from './anomaly-detector';
import type { LedgerRow } from './ledger-fold';

const CONFIG: AnomalyConfig = {
  windowSeconds: 60,
  zScore: 4,
  minBaselineWindows: 3,
  minUnits: 5,
  cohortFactor: 10,
  cohortMinSamples: 1000,
  burstCount: 3,
  burstSeconds: 2,
  maxAgeSeconds: 3600,
};
const consumption = (id: number, amount: number, atMs: number, balanceAfter = 1000): LedgerRow => ({
  id,
  memberId: '7',
  delta: -amount,
  balanceAfter,
  reason: 'consumption',
  note: null,
  createdAtMs: atMs,
  currentType: 't',
  maxQuota: 1000,
});

describe('AnomalyDetector', () => {
  it('learns a steady baseline, counts idle windows as zero and flags a spike once per window', () => {
    const detector = new AnomalyDetector(CONFIG);
    const state = newMemberUsage('7');
    const cohort = newCohortUsage('t');
    const kinds: string[] = [];
    let id = 1;
    for (let w = 0; w < 6; w++)
      kinds.push(...detector.observe(consumption(id++, 6, w * 60_000 + 5_000), 't', state, cohort).map((a) => a.kind));
    expect(kinds).toEqual([]);
    expect(state.ewmaMean).toBeCloseTo(6, 5);
    // 40 units in the next window: above 6 + 4 × max(σ, 3, 1) = 18; the second consume is the same window.
    const spike = detector.observe(consumption(id++, 40, 6 * 60_000 + 1_000), 't', state, cohort);
    expect(spike.map((a) => a.kind)).toEqual(['usage_spike']);
    expect(spike[0].dedupeKey).toBe(`7:usage_spike:${6 * 60_000}`);
    expect(detector.observe(consumption(id++, 40, 6 * 60_000 + 30_000), 't', state, cohort)).toEqual([]);
    // Ten idle windows pull the baseline down.
    detector.observe(consumption(id, 1, 17 * 60_000), 't', state, cohort);
    expect(state.ewmaMean).toBeLessThan(6);
    expect(cohort.samples).toBe(7); // windows 0-6 closed with consumption
  });

  it('counts a burst within the configured seconds, and threshold crossings once per period', () => {
    const detector = new AnomalyDetector(CONFIG);
    const state = newMemberUsage('7');
    const cohort = newCohortUsage('t');
    const at = (id: number, ms: number, balance: number) =>
      detector.observe(consumption(id, 1, ms, balance), 't', state, cohort).map((a) => a.kind);
    expect(at(1, 0, 500)).toEqual([]);
    expect(at(2, 3_000, 400)).toEqual([]); // outside 2 s: a new run starts
    expect(at(3, 3_500, 300)).toEqual([]);
    expect(at(4, 4_000, 150)).toEqual(['burst', 'threshold_80']);
    expect(at(5, 4_100, 100)).toEqual([]);
    expect(at(6, 60_000, 0)).toEqual(['threshold_100']);
    detector.observe({ ...consumption(7, 0, 70_000), reason: 'periodic_reset', delta: 1000 }, 't', state, cohort);
    expect(at(8, 80_000, 0)).toEqual(['threshold_80', 'threshold_100']);
  });
});
