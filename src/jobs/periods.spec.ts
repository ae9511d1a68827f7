import { currentPeriodStart, periodKey } from './periods';

const at = (iso: string) => new Date(iso);

describe('currentPeriodStart', () => {
  it.each([
    // UTC
    ['daily', 'UTC', '2026-03-10T00:00:00.000Z', '2026-03-10T00:00:00.000Z'],
    ['daily', 'UTC', '2026-03-10T23:59:59.999Z', '2026-03-10T00:00:00.000Z'],
    ['weekly', 'UTC', '2026-03-15T23:59:59.000Z', '2026-03-09T00:00:00.000Z'], // Sunday -> Monday before
    ['weekly', 'UTC', '2026-03-16T00:00:00.000Z', '2026-03-16T00:00:00.000Z'],
    ['monthly', 'UTC', '2026-01-31T23:59:59.000Z', '2026-01-01T00:00:00.000Z'],
    ['monthly', 'UTC', '2026-02-28T12:00:00.000Z', '2026-02-01T00:00:00.000Z'],
    ['monthly', 'UTC', '2026-03-01T00:00:00.000Z', '2026-03-01T00:00:00.000Z'],
    // Europe/Berlin: CET (UTC+1) until 2026-03-29 02:00, then CEST (UTC+2)
    ['daily', 'Europe/Berlin', '2026-03-28T22:59:59.000Z', '2026-03-27T23:00:00.000Z'],
    ['daily', 'Europe/Berlin', '2026-03-28T23:00:00.000Z', '2026-03-28T23:00:00.000Z'],
    ['daily', 'Europe/Berlin', '2026-03-29T21:59:59.000Z', '2026-03-28T23:00:00.000Z'], // a 23-hour day
    ['daily', 'Europe/Berlin', '2026-03-29T22:00:00.000Z', '2026-03-29T22:00:00.000Z'],
    ['daily', 'Europe/Berlin', '2026-10-25T22:59:59.000Z', '2026-10-24T22:00:00.000Z'], // a 25-hour day
    ['weekly', 'Europe/Berlin', '2026-03-29T21:59:59.000Z', '2026-03-22T23:00:00.000Z'],
    ['weekly', 'Europe/Berlin', '2026-03-29T22:00:00.000Z', '2026-03-29T22:00:00.000Z'], // Monday 30 March 00:00 CEST
    ['monthly', 'Europe/Berlin', '2026-03-31T21:59:59.000Z', '2026-02-28T23:00:00.000Z'],
    ['monthly', 'Europe/Berlin', '2026-03-31T22:00:00.000Z', '2026-03-31T22:00:00.000Z'],
    // America/New_York: DST from 2026-03-08
    ['daily', 'America/New_York', '2026-03-08T04:59:59.000Z', '2026-03-07T05:00:00.000Z'],
    ['daily', 'America/New_York', '2026-03-09T03:59:59.000Z', '2026-03-08T05:00:00.000Z'],
    ['daily', 'America/New_York', '2026-03-09T04:00:00.000Z', '2026-03-09T04:00:00.000Z'],
  ] as const)('%s in %s at %s starts at %s', (period, zone, now, expected) => {
    expect(currentPeriodStart(period, at(now), zone).toISOString()).toBe(expected);
  });

  it('never drifts: consecutive daily periods over a year are consecutive midnights', () => {
    let now = at('2026-01-01T12:00:00.000Z');
    const starts = new Set<string>();
    for (let i = 0; i < 365; i++) {
      starts.add(currentPeriodStart('daily', now, 'Europe/Berlin').toISOString());
      now = new Date(now.getTime() + 86_400_000);
    }
    expect(starts.size).toBe(365);
  });

  it('keys a period by its kind and start', () => {
    expect(periodKey('weekly', at('2026-03-16T00:00:00.000Z'))).toBe('weekly:2026-03-16T00:00:00.000Z');
  });
});
