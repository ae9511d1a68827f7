import { EventEmitter } from 'node:events';
import type { KeyvStoreAdapter, StoredData } from 'keyv';
import type { RedisClient } from './redis.module';

/**
 * A Keyv store (what cache-manager keeps entries in) over an ioredis client, so the stats cache
 * works on a single server, a Cluster and Sentinel with the same client library as everything
 * else. Keys are `<keyPrefix><key>`; values are Keyv's serialized text; a TTL becomes PX.
 */
export class RedisKeyvStore extends EventEmitter implements KeyvStoreAdapter {
  /** Keyv reads adapter options from here; this store has none. */
  readonly opts = {};
  /** Set by Keyv; not used for keys (the prefix is fixed at construction). */
  namespace: string | undefined;

  constructor(
    /** Replaceable, so that a test can point the cache alone at an unreachable server. */
    public client: RedisClient,
    private readonly keyPrefix: string,
  ) {
    super();
  }

  async get<Value>(key: string): Promise<StoredData<Value> | undefined> {
    const value = await this.client.get(this.keyPrefix + key);
    return (value ?? undefined) as StoredData<Value> | undefined;
  }

  async set(key: string, value: string, ttl?: number): Promise<boolean> {
    const k = this.keyPrefix + key;
    const reply =
      ttl && ttl > 0 ? await this.client.set(k, value, 'PX', Math.ceil(ttl)) : await this.client.set(k, value);
    return reply === 'OK';
  }

  async delete(key: string): Promise<boolean> {
    return (await this.client.del(this.keyPrefix + key)) > 0;
  }

  /**
   * Deletes this store's keys only. On a Cluster each master holds some of them: every master is
   * scanned, and keys are deleted one by one (they live in different slots).
   */
  async clear(): Promise<void> {
    const pattern = `${this.keyPrefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
    const nodes = 'nodes' in this.client && this.client.isCluster ? this.client.nodes('master') : [this.client];
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
        for (const key of keys) await this.client.del(key);
        cursor = next;
      } while (cursor !== '0');
    }
  }

  /** Drops the connection at once: shutdown must not wait on commands stuck on an unreachable Redis. */
  disconnect(): Promise<void> {
    this.client.disconnect();
    return Promise.resolve();
  }
}
