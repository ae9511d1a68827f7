interface Waiter<V> {
  resolve(value: V): void;
  reject(err: unknown): void;
}

interface KeyReads<V> {
  waiting: Waiter<V>[];
}

/**
 * Shares one read among concurrent callers asking for the same key, without ever handing a caller
 * an answer older than its own arrival: callers arriving while a read is in flight wait for the
 * next one, which starts as soon as the current one settles, and share it. So at most one read
 * per key is in flight and one queued, whatever the load, and every answer comes from a read that
 * started after its caller asked. Under light load nobody waits: a lone caller's read starts at once.
 */
export class FreshReads<K, V> {
  private readonly keys = new Map<K, KeyReads<V>>();

  constructor(private readonly read: (key: K) => Promise<V>) {}

  get(key: K): Promise<V> {
    return new Promise<V>((resolve, reject) => {
      const pending = this.keys.get(key);
      if (pending) {
        pending.waiting.push({ resolve, reject });
        return;
      }
      const reads: KeyReads<V> = { waiting: [{ resolve, reject }] };
      this.keys.set(key, reads);
      void this.drain(key, reads);
    });
  }

  /** Number of keys with a read in flight (for tests and metrics). */
  get inFlight(): number {
    return this.keys.size;
  }

  private async drain(key: K, reads: KeyReads<V>): Promise<void> {
    while (reads.waiting.length > 0) {
      const batch = reads.waiting;
      reads.waiting = [];
      try {
        const value = await this.read(key);
        for (const waiter of batch) waiter.resolve(value);
      } catch (err) {
        for (const waiter of batch) waiter.reject(err);
      }
    }
    this.keys.delete(key);
  }
}
