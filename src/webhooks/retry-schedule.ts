/**
 * When a failed webhook delivery is tried again (contract §12: exponential backoff with jitter,
 * for at least 24 hours). Each delay is a multiple of WEBHOOK_RETRY_BASE_MS (5 s by default), so
 * the whole schedule shrinks with the base and tests can run it in seconds.
 *
 * The multiples grow fourfold from 1 and stop growing at 4320 (6 h at the default base), so a
 * receiver that is down for a day is still tried every few hours rather than once a day. Each
 * delay is then stretched by a random factor between JITTER_LOW and JITTER_HIGH so that the
 * deliveries of a receiver that came back are not all retried in the same second. At the lowest
 * jitter the schedule spans 25 h 16 min at the default base; at the highest, 37 h 54 min.
 */
export const RETRY_DELAY_MULTIPLES: readonly number[] = [1, 4, 16, 64, 256, 1024, 4096, 4320, 4320, 4320, 4320];

/** The first attempt is immediate; each retry follows one delay of the schedule. */
export const MAX_ATTEMPTS = RETRY_DELAY_MULTIPLES.length + 1;

export const JITTER_LOW = 0.8;
export const JITTER_HIGH = 1.2;

/**
 * How long to wait after failed attempt number `attempt` (1 = the first), or null when it was the
 * last one and the delivery has failed for good. `random` returns [0, 1), as Math.random.
 */
export function retryDelayMs(attempt: number, baseMs: number, random: () => number = Math.random): number | null {
  if (!Number.isInteger(attempt) || attempt < 1)
    throw new RangeError(`attempt must be a positive integer, got ${attempt}`);
  if (attempt >= MAX_ATTEMPTS) return null;
  const jitter = JITTER_LOW + (JITTER_HIGH - JITTER_LOW) * random();
  return Math.round(RETRY_DELAY_MULTIPLES[attempt - 1] * baseMs * jitter);
}
