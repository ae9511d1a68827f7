import { nextResetAt } from './reset-schedule';

describe('nextResetAt', () => {
  const at = (iso: string) => new Date(iso);

  it('never resets for reset_period none', () => {
    expect(nextResetAt('none', at('2026-03-10T12:00:00Z'), 'UTC')).toBeNull();
  });

  it('daily: the next local midnight', () => {
    expect(nextResetAt('daily', at('2026-03-10T12:00:00Z'), 'UTC')?.toISOString()).toBe('2026-03-11T00:00:00.000Z');
    expect(nextResetAt('daily', at('2026-03-10T00:00:00Z'), 'UTC')?.toISOString()).toBe('2026-03-11T00:00:00.000Z');
    // 23:30 UTC is already the next day in Berlin (UTC+1 in winter).
    expect(nextResetAt('daily', at('2026-01-10T23:30:00Z'), 'Europe/Berlin')?.toISOString()).toBe(
      '2026-01-11T23:00:00.000Z',
    );
  });

  it('weekly: the next Monday, even on a Monday', () => {
    // 2026-03-10 is a Tuesday; 2026-03-16 a Monday.
    expect(nextResetAt('weekly', at('2026-03-10T12:00:00Z'), 'UTC')?.toISOString()).toBe('2026-03-16T00:00:00.000Z');
    expect(nextResetAt('weekly', at('2026-03-16T08:00:00Z'), 'UTC')?.toISOString()).toBe('2026-03-23T00:00:00.000Z');
    expect(nextResetAt('weekly', at('2026-03-15T23:59:59Z'), 'UTC')?.toISOString()).toBe('2026-03-16T00:00:00.000Z');
  });

  it('monthly: the 1st of the next month, across year ends', () => {
    expect(nextResetAt('monthly', at('2026-01-31T12:00:00Z'), 'UTC')?.toISOString()).toBe('2026-02-01T00:00:00.000Z');
    expect(nextResetAt('monthly', at('2026-12-15T00:00:00Z'), 'UTC')?.toISOString()).toBe('2027-01-01T00:00:00.000Z');
  });

  it('follows daylight saving time in the configured zone', () => {
    // Europe/Berlin switches to summer time on 2026-03-29: midnight of the 30th is 22:00 UTC.
    expect(nextResetAt('daily', at('2026-03-29T12:00:00Z'), 'Europe/Berlin')?.toISOString()).toBe(
      '2026-03-29T22:00:00.000Z',
    );
    expect(nextResetAt('monthly', at('2026-03-15T12:00:00Z'), 'America/New_York')?.toISOString()).toBe(
      '2026-04-01T04:00:00.000Z',
    );
  });
});
