import { once } from 'node:events';
import type { OnApplicationBootstrap } from '@nestjs/common';
import type { ThrottlerStorage } from '@nestjs/throttler';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';

/**
 * Fixed window per key, then a block once the limit is passed. ARGV[4] hits arrive together (see
 * KeyState); ARGV[5] more are asked for as a lease, granted only from budget left in the window.
 * Returns the count after the real hits, the window's remaining time, whether a block was already
 * in place, the block's time and the lease granted. Both keys share a hash tag so the script
 * stays on one slot under Redis Cluster.
 */
const INCREMENT_SCRIPT = `
local hitKey = KEYS[1]
local blockKey = KEYS[2]
local ttl = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local blockDuration = tonumber(ARGV[3])
local hits = tonumber(ARGV[4])
local wantedLease = tonumber(ARGV[5])
local blockTtl = redis.call('PTTL', blockKey)
if blockTtl > 0 then
  local total = tonumber(redis.call('GET', hitKey) or '0')
  local hitTtl = redis.call('PTTL', hitKey)
  if hitTtl < 0 then hitTtl = 0 end
  return { total, hitTtl, 1, blockTtl, 0 }
end
local current = tonumber(redis.call('GET', hitKey) or '0')
local lease = math.max(0, math.min(wantedLease, limit - current - hits))
local total = redis.call('INCRBY', hitKey, hits + lease)
local timeToExpire = redis.call('PTTL', hitKey)
if timeToExpire <= 0 then
  redis.call('PEXPIRE', hitKey, ttl)
  timeToExpire = ttl
end
local counted = total - lease
if counted > limit then
  redis.call('SET', blockKey, 1, 'PX', blockDuration)
  return { counted, timeToExpire, 0, blockDuration, 0 }
end
return { counted, timeToExpire, 0, 0, lease }
`;

/** A slow Redis must not slow every request down: past this the limiter gives up and lets it through. */
const COMMAND_TIMEOUT_MS = 500;
const READY_WAIT_MS = 3000;
const ERROR_LOG_INTERVAL_MS = 10_000;
/** A lease is at most this many hits, and at most this fraction of the budget left in the window. */
const LEASE_MAX = 32;
const LEASE_SHARE_OF_REMAINING = 1 / 8;
/** Past this many keys, idle ones (no lease left, nothing in flight) are dropped. */
const KEYS_KEPT = 10_000;

type ScriptClient = Redis & {
  quotaThrottleIncrement(
    hitKey: string,
    blockKey: string,
    ttl: number,
    limit: number,
    block: number,
    hits: number,
    lease: number,
  ): Promise<unknown>;
};

interface ThrottlerRecord {
  totalHits: number;
  timeToExpire: number;
  isBlocked: boolean;
  timeToBlockExpire: number;
}

interface Hit {
  resolve(record: ThrottlerRecord): void;
}

/**
 * What this instance knows about one key. At most one script call per key is in flight; hits
 * arriving meanwhile wait and go together in the next call. Far from the limit, a call also
 * reserves a lease of hits in Redis, which later hits use here without a round trip: they are
 * already counted, so every instance sees them, and a lease never exceeds the budget left, so
 * the limit still holds across instances. A lease unused when the window ends only lowers what
 * the window admitted.
 */
interface KeyState {
  readonly ttl: number;
  readonly limit: number;
  readonly blockDuration: number;
  inFlight: boolean;
  waiting: Hit[];
  /** The count last seen in Redis, to size the next lease. */
  lastCount: number;
  /** Leased hit numbers not yet used: nextLeased..lastLeased, valid until leaseExpiresAt (ms). */
  nextLeased: number;
  lastLeased: number;
  leaseExpiresAt: number;
}

/**
 * Throttler storage shared by every instance through Redis, under REDIS_PREFIX. It fails open: if
 * Redis errors or is slow, the request goes through, and that is logged and counted.
 */
export class RedisThrottlerStorage implements ThrottlerStorage, OnApplicationBootstrap {
  private readonly client: ScriptClient;
  private readonly failures: Counter;
  private lastLogged = 0;
  private readonly keys = new Map<string, KeyState>();

  constructor(
    client: Redis,
    private readonly keyPrefix: string,
    private readonly logger: Logger,
    registry: Registry,
  ) {
    client.defineCommand('quotaThrottleIncrement', { numberOfKeys: 2, lua: INCREMENT_SCRIPT });
    this.client = client as ScriptClient;
    this.failures = new Counter({
      name: 'quota_rate_limit_store_errors_total',
      help: 'Rate-limit checks let through because the Redis store failed (fail open).',
      registers: [registry],
    });
  }

  /** The shared client refuses commands until connected; give it a moment at start-up. */
  async onApplicationBootstrap(): Promise<void> {
    if (this.client.status === 'ready') return;
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, READY_WAIT_MS).unref());
    await Promise.race([once(this.client, 'ready').then(() => undefined), timeout]).catch(() => undefined);
  }

  /** Counts one hit: from a lease when one is left, otherwise through Redis (see KeyState). */
  increment(
    key: string,
    ttl: number,
    limit: number,
    blockDuration: number,
    _throttlerName: string,
  ): Promise<ThrottlerRecord> {
    let state = this.keys.get(key);
    const now = Date.now();
    if (state && state.nextLeased <= state.lastLeased && now < state.leaseExpiresAt) {
      const totalHits = state.nextLeased++;
      const timeToExpire = Math.ceil((state.leaseExpiresAt - now) / 1000);
      return Promise.resolve({ totalHits, timeToExpire, isBlocked: false, timeToBlockExpire: 0 });
    }
    if (!state) {
      if (this.keys.size >= KEYS_KEPT) this.dropIdleKeys(now);
      state = {
        ttl,
        limit,
        blockDuration,
        inFlight: false,
        waiting: [],
        lastCount: 0,
        nextLeased: 1,
        lastLeased: 0,
        leaseExpiresAt: 0,
      };
      this.keys.set(key, state);
    }
    const current = state;
    return new Promise((resolve) => {
      current.waiting.push({ resolve });
      if (!current.inFlight) void this.send(key, current);
    });
  }

  private async send(key: string, state: KeyState): Promise<void> {
    state.inFlight = true;
    while (state.waiting.length > 0) {
      const hits = state.waiting;
      state.waiting = [];
      const records = await this.call(key, state, hits.length);
      hits.forEach((hit, i) => hit.resolve(records(i)));
    }
    state.inFlight = false;
  }

  /** One script call for `count` hits (and a lease); returns what the i-th of them is told. */
  private async call(key: string, state: KeyState, count: number): Promise<(i: number) => ThrottlerRecord> {
    const base = `${this.keyPrefix}{${key}}`;
    const remaining = state.limit - state.lastCount - count;
    const wantedLease = Math.max(0, Math.min(LEASE_MAX, Math.floor(remaining * LEASE_SHARE_OF_REMAINING)));
    let timer: NodeJS.Timeout | undefined;
    try {
      const result = await Promise.race([
        this.client.quotaThrottleIncrement(
          `${base}:hits`,
          `${base}:blocked`,
          state.ttl,
          state.limit,
          state.blockDuration,
          count,
          wantedLease,
        ),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${COMMAND_TIMEOUT_MS} ms`)), COMMAND_TIMEOUT_MS);
        }),
      ]);
      const [counted, timeToExpire, wasBlocked, timeToBlockExpire, lease] = parseResult(result);
      const expire = Math.ceil(timeToExpire / 1000);
      const blockExpire = Math.ceil(timeToBlockExpire / 1000);
      state.lastCount = counted + lease;
      state.nextLeased = counted + 1;
      state.lastLeased = counted + lease;
      state.leaseExpiresAt = Date.now() + timeToExpire;
      if (wasBlocked === 1) {
        return () => ({ totalHits: counted, timeToExpire: expire, isBlocked: true, timeToBlockExpire: blockExpire });
      }
      // The hits were added in order: the i-th of them brought the count to first + i.
      const first = counted - count + 1;
      return (i) => {
        const hits = first + i;
        const isBlocked = hits > state.limit;
        return { totalHits: hits, timeToExpire: expire, isBlocked, timeToBlockExpire: isBlocked ? blockExpire : 0 };
      };
    } catch (err) {
      this.failures.inc(count);
      const now = Date.now();
      if (now - this.lastLogged > ERROR_LOG_INTERVAL_MS) {
        this.lastLogged = now;
        this.logger.error(
          { err: { message: err instanceof Error ? err.message : String(err) } },
          'rate limiter store unavailable: letting requests through unthrottled',
        );
      }
      const open = { totalHits: 0, timeToExpire: Math.ceil(state.ttl / 1000), isBlocked: false, timeToBlockExpire: 0 };
      return () => open;
    } finally {
      clearTimeout(timer);
    }
  }

  private dropIdleKeys(now: number): void {
    for (const [key, state] of this.keys) {
      const leaseLeft = state.nextLeased <= state.lastLeased && now < state.leaseExpiresAt;
      if (!state.inFlight && !leaseLeft) this.keys.delete(key);
    }
  }
}

function parseResult(result: unknown): [number, number, number, number, number] {
  if (!Array.isArray(result) || result.length !== 5 || !result.every((v) => typeof v === 'number')) {
    throw new TypeError('unexpected answer from the rate-limit script');
  }
  return result as [number, number, number, number, number];
}
