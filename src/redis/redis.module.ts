import { Global, Inject, Injectable, Module, OnApplicationShutdown } from '@nestjs/common';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { AppConfig, type RedisConfig } from '../config/app-config';
import { ROOT_LOGGER } from '../common/logger.token';
import { describeTls, tlsConnectOptions } from '../config/tls';

/** During an outage every reconnect attempt fails: one line per client per interval says enough. */
const ERROR_LOG_INTERVAL_MS = 10_000;

/**
 * An 'error' listener for one Redis client (ours, BullMQ's, the stats cache's). A client with no
 * listener has its errors printed raw by the driver, with stack and socket details, on every
 * reconnect attempt; this logs the message only, at most once per interval, and counts the rest.
 */
export function redisErrorListener(
  logger: Logger,
  client: string,
  msg = 'redis connection error',
): (err: unknown) => void {
  let lastLogged = 0;
  let suppressed = 0;
  return (err) => {
    const now = Date.now();
    if (now - lastLogged < ERROR_LOG_INTERVAL_MS) {
      suppressed++;
      return;
    }
    lastLogged = now;
    const message = err instanceof Error ? err.message : String(err);
    logger.warn({ err: { message }, client, ...(suppressed > 0 ? { suppressed } : {}) }, msg);
    suppressed = 0;
  };
}

/** A connection to whichever topology is configured: ioredis's own Redis or Cluster client. */
export type RedisClient = Redis | Cluster;

/** Connection options without a reconnect schedule: each user of them brings its own. */
export type StandaloneOptions = Omit<RedisOptions, 'retryStrategy'>;

const reconnectDelay = (attempt: number): number => Math.min(attempt * 200, 2000);

/**
 * Options every connection to a data node gets, whatever the topology: credentials, database,
 * TLS and a name that shows up in CLIENT LIST.
 */
function dataNodeOptions(config: RedisConfig, name: string): StandaloneOptions {
  return {
    password: config.password,
    db: config.db,
    tls: config.tls ? tlsConnectOptions(config.tls) : undefined,
    connectionName: `quota-service:${name}`,
    connectTimeout: 2000,
  };
}

/**
 * How a single server or a Sentinel-managed master is reached (ioredis asks the sentinels for the
 * master and asks again on every reconnect; the failover detector reconnects as soon as a
 * sentinel announces a new master). Not for a Cluster, which has its own client class.
 */
export function standaloneOptions(config: RedisConfig, name: string): StandaloneOptions {
  const topology = config.topology;
  const base = dataNodeOptions(config, name);
  if (topology.kind === 'single') return { ...base, host: topology.host, port: topology.port };
  if (topology.kind === 'cluster') throw new Error('a Redis Cluster is reached with clusterClient()');
  return {
    ...base,
    sentinels: topology.sentinels.map(({ host, port }) => ({ host, port })),
    name: topology.name,
    sentinelPassword: topology.sentinelPassword,
    // With REDIS_TLS the sentinels are spoken to over TLS too, with the same trust settings.
    enableTLSForSentinelMode: config.tls !== undefined,
    sentinelTLS: config.tls ? tlsConnectOptions(config.tls) : undefined,
    failoverDetector: true,
    // A demoted master answers writes with READONLY until its clients are dropped: reconnect (the
    // sentinels name the new master) and resend the command there.
    reconnectOnError: (err) => (err.message.startsWith('READONLY') ? 2 : false),
  };
}

/**
 * A Redis Cluster client (slot map, MOVED/ASK redirections and failover handled by ioredis).
 * `nodeOptions` apply to every node connection; the Cluster's own retry and offline queue replace
 * the per-node ones, which ioredis ignores inside a Cluster.
 */
export function clusterClient(
  config: RedisConfig,
  name: string,
  overrides: { nodeOptions?: RedisOptions; cluster?: ClusterOptions } = {},
): Cluster {
  const topology = config.topology;
  if (topology.kind !== 'cluster') throw new Error(`not a Redis Cluster: ${topology.kind}`);
  const redisOptions: RedisOptions = { ...dataNodeOptions(config, name), ...overrides.nodeOptions };
  delete redisOptions.retryStrategy;
  delete redisOptions.enableOfflineQueue;
  return new Cluster(
    topology.nodes.map(({ host, port }) => ({ host, port })),
    {
      redisOptions,
      clusterRetryStrategy: reconnectDelay,
      slotsRefreshTimeout: 2000,
      // Behind TLS the certificate names the host, not its address: connect by the name given.
      ...(config.tls
        ? { dnsLookup: (address: string, done: (err: null, address: string) => void) => done(null, address) }
        : {}),
      ...overrides.cluster,
    },
  );
}

/**
 * A fail-fast client for the given topology, with an error listener attached (the default one, or
 * the caller's when something else reports errors of the same client and must share its budget).
 */
export function createRedisClient(
  config: RedisConfig,
  logger: Logger,
  name: string,
  onError: (err: unknown) => void = redisErrorListener(logger, name),
): RedisClient {
  // Fail fast while Redis (or a failing-over part of it) is away instead of queueing: callers
  // decide how to degrade.
  const failFast = { maxRetriesPerRequest: 1, enableOfflineQueue: false };
  const client =
    config.topology.kind === 'cluster'
      ? clusterClient(config, name, {
          nodeOptions: { maxRetriesPerRequest: 1 },
          cluster: { enableOfflineQueue: false },
        })
      : new Redis({ ...standaloneOptions(config, name), ...failFast, retryStrategy: reconnectDelay });
  client.on('error', onError);
  return client;
}

/** The Redis target for the start-up line: which topology, where, and how it is secured. */
export function describeRedis(config: RedisConfig): string {
  const topology = config.topology;
  const where =
    topology.kind === 'single'
      ? `Redis ${topology.host}:${topology.port}`
      : topology.kind === 'cluster'
        ? `Redis Cluster (${topology.nodes.length} seed node${topology.nodes.length === 1 ? '' : 's'})`
        : `Redis Sentinel ${topology.name} via ${topology.sentinels.length} sentinel${topology.sentinels.length === 1 ? '' : 's'}`;
  return `${where} (${describeTls(config.tls)})`;
}

/** The shared Redis connection, or null when no Redis is configured (embedded mode). */
@Injectable()
export class RedisConnection implements OnApplicationShutdown {
  readonly client: RedisClient | null;

  constructor(config: AppConfig, @Inject(ROOT_LOGGER) logger: Logger) {
    this.client = config.redis ? createRedisClient(config.redis, logger, 'main') : null;
  }

  async ping(timeoutMs: number): Promise<string> {
    if (!this.client) throw new Error('redis is not configured');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([this.client.ping(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  onApplicationShutdown(): void {
    this.client?.disconnect();
  }
}

@Global()
@Module({ providers: [RedisConnection], exports: [RedisConnection] })
export class RedisModule {}
