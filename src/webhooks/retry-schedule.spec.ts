import { JITTER_HIGH, JITTER_LOW, MAX_ATTEMPTS, RETRY_DELAY_MULTIPLES, retryDelayMs } from './retry-schedule';

const HOUR = 3_600_000;
const DEFAULT_BASE = 5000;
const lowest = () => 0;
const highest = () => 0.999999999;

function span(baseMs: number, random: () => number): number {
  let total = 0;
  for (let attempt = 1; attempt < MAX_ATTEMPTS; attempt++) total += retryDelayMs(attempt, baseMs, random) ?? NaN;
  return total;
}

describe('webhook retry schedule', () => {
  it('spans at least 24 h at the default base, even with every jitter at its lowest', () => {
    expect(span(DEFAULT_BASE, lowest)).toBeGreaterThanOrEqual(24 * HOUR);
    // 22,741 base delays: 25 h 16 min at the lowest jitter, 37 h 54 min at the highest.
    expect(span(DEFAULT_BASE, lowest)).toBe(Math.round(22_741 * DEFAULT_BASE * JITTER_LOW));
    expect(span(DEFAULT_BASE, highest)).toBeLessThanOrEqual(22_741 * DEFAULT_BASE * JITTER_HIGH);
  });

  it('grows exponentially from the base, then stops growing at 6 h', () => {
    const nominal = Array.from({ length: MAX_ATTEMPTS - 1 }, (_, i) => retryDelayMs(i + 1, DEFAULT_BASE, () => 0.5));
    expect(nominal).toEqual([
      5000,
      20_000,
      80_000,
      320_000,
      1_280_000,
      5_120_000,
      20_480_000,
      6 * HOUR,
      6 * HOUR,
      6 * HOUR,
      6 * HOUR,
    ]);
    for (let i = 1; i < 7; i++) expect(RETRY_DELAY_MULTIPLES[i]).toBe(4 * RETRY_DELAY_MULTIPLES[i - 1]);
  });

  it('jitters each delay within 80–120 % of its nominal value', () => {
    for (let attempt = 1; attempt < MAX_ATTEMPTS; attempt++) {
      const nominal = RETRY_DELAY_MULTIPLES[attempt - 1] * DEFAULT_BASE;
      expect(retryDelayMs(attempt, DEFAULT_BASE, lowest)).toBe(Math.round(nominal * 0.8));
      expect(retryDelayMs(attempt, DEFAULT_BASE, highest)).toBe(Math.round(nominal * 1.2));
      const random = retryDelayMs(attempt, DEFAULT_BASE) ?? NaN;
      expect(random).toBeGreaterThanOrEqual(nominal * 0.8 - 1);
      expect(random).toBeLessThanOrEqual(nominal * 1.2 + 1);
    }
  });

  it('scales every delay with WEBHOOK_RETRY_BASE_MS', () => {
    for (let attempt = 1; attempt < MAX_ATTEMPTS; attempt++) {
      const atDefault = retryDelayMs(attempt, DEFAULT_BASE, lowest) ?? NaN;
      expect(retryDelayMs(attempt, 50, lowest)).toBe(Math.round(atDefault / 100));
    }
    expect(span(50, lowest)).toBeCloseTo(span(DEFAULT_BASE, lowest) / 100, -1);
    expect(span(1, lowest)).toBeLessThan(20_000);
  });

  it('ends after the last attempt: no delay, the delivery has failed', () => {
    expect(MAX_ATTEMPTS).toBe(12);
    expect(retryDelayMs(MAX_ATTEMPTS - 1, DEFAULT_BASE, lowest)).not.toBeNull();
    expect(retryDelayMs(MAX_ATTEMPTS, DEFAULT_BASE)).toBeNull();
    expect(retryDelayMs(MAX_ATTEMPTS + 5, DEFAULT_BASE)).toBeNull();
    expect(() => retryDelayMs(0, DEFAULT_BASE)).toThrow(RangeError);
  });
});
