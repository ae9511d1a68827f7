import { Injectable } from '@nestjs/common';
import { Gauge } from 'prom-client';
import { DataSource } from 'typeorm';
import { MetricsRegistry } from './metrics-registry';

interface Mysql2PoolInternals {
  _allConnections?: { length: number };
  _freeConnections?: { length: number };
  _connectionQueue?: { length: number };
  config?: { connectionLimit?: number };
}

/** MySQL pool use, read from mysql2's pool when Prometheus scrapes; absent on the embedded database. */
@Injectable()
export class DatabasePoolMetrics {
  constructor(registry: MetricsRegistry, dataSource: DataSource) {
    const pool = () => (dataSource.driver as { pool?: Mysql2PoolInternals }).pool;
    new Gauge({
      name: 'quota_db_pool_connections',
      help: 'Database pool connections by state (open, idle, waiting requests, limit)',
      labelNames: ['state'],
      registers: [registry],
      collect() {
        const p = pool();
        if (!p) return;
        this.set({ state: 'open' }, p._allConnections?.length ?? 0);
        this.set({ state: 'idle' }, p._freeConnections?.length ?? 0);
        this.set({ state: 'waiting' }, p._connectionQueue?.length ?? 0);
        this.set({ state: 'limit' }, p.config?.connectionLimit ?? 0);
      },
    });
  }
}
