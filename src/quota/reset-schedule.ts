import type { ResetPeriod } from './entities/quota-config.entity';

interface WallTime {
  readonly year: number;
  readonly month: number;
  readonly day: number;
  readonly hour: number;
  readonly minute: number;
  readonly second: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

function wallTime(date: Date, timeZone: string): WallTime {
  const parts: Record<string, number> = {};
  for (const part of formatter(timeZone).formatToParts(date)) {
    if (part.type !== 'literal') parts[part.type] = Number(part.value);
  }
  return {
    year: parts.year,
    month: parts.month,
    day: parts.day,
    hour: parts.hour,
    minute: parts.minute,
    second: parts.second,
  };
}

/** The instant at which the zone's clocks show the given wall time (the later one across a DST gap). */
function zonedToUtc(wall: WallTime, timeZone: string): Date {
  const asUtc = Date.UTC(wall.year, wall.month - 1, wall.day, wall.hour, wall.minute, wall.second);
  let guess = asUtc;
  for (let i = 0; i < 3; i++) {
    const seen = wallTime(new Date(guess), timeZone);
    const seenAsUtc = Date.UTC(seen.year, seen.month - 1, seen.day, seen.hour, seen.minute, seen.second);
    const drift = seenAsUtc - asUtc;
    if (drift === 0) break;
    guess -= drift;
  }
  return new Date(guess);
}

/**
 * When the balances of a config's members are next reset: calendar boundaries in the configured
 * time zone (midnight; Monday for weekly; the 1st for monthly). Null when the config never resets.
 */
export function nextResetAt(period: ResetPeriod, now: Date, timeZone: string): Date | null {
  if (period === 'none') return null;
  const today = wallTime(now, timeZone);
  // Calendar arithmetic on the local date, done in UTC so that no offset interferes.
  const local = new Date(Date.UTC(today.year, today.month - 1, today.day));
  switch (period) {
    case 'daily':
      local.setUTCDate(local.getUTCDate() + 1);
      break;
    case 'weekly': {
      const daysSinceMonday = (local.getUTCDay() + 6) % 7;
      local.setUTCDate(local.getUTCDate() + 7 - daysSinceMonday);
      break;
    }
    case 'monthly':
      local.setUTCMonth(local.getUTCMonth() + 1, 1);
      break;
  }
  return zonedToUtc(
    {
      year: local.getUTCFullYear(),
      month: local.getUTCMonth() + 1,
      day: local.getUTCDate(),
      hour: 0,
      minute: 0,
      second: 0,
    },
    timeZone,
  );
}
