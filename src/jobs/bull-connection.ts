import {
  RedisConnection as BullRedisConnection,
  createIORedisClient,
  type ConnectionOptions,
  type RedisOptions as BullRedisOptions,
} from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import type { RedisConfig } from '../config/app-config';
import { clusterClient, standaloneOptions } from '../redis/redis.module';

/** Marks BullMQ connection options that stand for a Redis Cluster (see bullClientFactory). */
const CLUSTER_CONFIG = Symbol.for('quota-service.bullmq.redis-cluster');

type MarkedOptions = BullRedisOptions & { [CLUSTER_CONFIG]?: RedisConfig };

/**
 * The `connection` for BullMQ's queues and workers. BullMQ creates (and closes) its own
 * connections from options, with the settings it needs (no retry limit on blocking connections,
 * an offline queue so jobs wait out a reconnect); a single server and Sentinel are plain ioredis
 * options. A Cluster needs an ioredis Cluster instance, but an instance handed to BullMQ is shared
 * and never closed by it, so the options carry the Cluster's configuration instead and BullMQ's
 * client factory builds one owned Cluster client per connection.
 */
export function bullConnection(config: RedisConfig): ConnectionOptions {
  if (config.topology.kind !== 'cluster') {
    // No retryStrategy here: BullMQ's own reconnect schedule applies.
    const options: BullRedisOptions = standaloneOptions(config, 'bullmq');
    return options;
  }
  installClusterFactory();
  const marked: MarkedOptions = { [CLUSTER_CONFIG]: config };
  return marked;
}

function installClusterFactory(): void {
  if (BullRedisConnection.clientFactory === bullClientFactory) return;
  if (BullRedisConnection.clientFactory !== undefined) {
    throw new Error('another BullMQ client factory is installed; the Redis Cluster connection cannot be added');
  }
  BullRedisConnection.clientFactory = bullClientFactory;
}

/**
 * Process-wide (BullMQ has one factory): options without the mark get exactly what BullMQ builds
 * by default, so other queues in the process are unaffected.
 */
function bullClientFactory(options: BullRedisOptions) {
  const { [CLUSTER_CONFIG]: config, url, ...rest } = options as MarkedOptions;
  if (config === undefined) {
    const ioredisOptions = rest as RedisOptions;
    return createIORedisClient(url ? new Redis(url, ioredisOptions) : new Redis(ioredisOptions));
  }
  const nodeOptions: RedisOptions = { connectionName: rest.connectionName ?? 'quota-service:bullmq' };
  // BullMQ sets null (wait for ever) on its blocking connections and leaves the default elsewhere.
  if (rest.maxRetriesPerRequest !== undefined) nodeOptions.maxRetriesPerRequest = rest.maxRetriesPerRequest;
  return createIORedisClient(clusterClient(config, 'bullmq', { nodeOptions }));
}
