import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import * as mysql2 from 'mysql2';
import type { DataSourceOptions } from 'typeorm';
import type { DatabaseConfig } from '../config/app-config';
import { ENTITIES } from './entities';
import { MIGRATIONS } from './migrations';

/**
 * Every pooled MySQL connection runs in strict mode and UTC, whatever the server's defaults, so an
 * out-of-range value is an error (never clipped) and timestamps never shift.
 */
const SESSION_SETUP_SQL =
  "SET SESSION sql_mode = 'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION,NO_ZERO_DATE,NO_ZERO_IN_DATE', time_zone = '+00:00'";

const strictMysql2 = {
  ...mysql2,
  createPool(options: mysql2.PoolOptions) {
    const pool = mysql2.createPool(options);
    pool.on('connection', (connection) => {
      connection.query(SESSION_SETUP_SQL);
    });
    return pool;
  },
};

export const MIGRATIONS_TABLE = 'migrations';

export function buildDataSourceOptions(database: DatabaseConfig, migrationsRun: boolean): DataSourceOptions {
  const common = {
    entities: ENTITIES,
    migrations: MIGRATIONS,
    migrationsTableName: MIGRATIONS_TABLE,
    migrationsTransactionMode: 'each' as const,
    migrationsRun,
    synchronize: false,
    logging: false,
  };
  if (database.kind === 'sqlite') {
    if (database.path !== ':memory:') mkdirSync(dirname(database.path), { recursive: true });
    return {
      ...common,
      type: 'better-sqlite3',
      database: database.path,
      // WAL lets readers proceed while one writer commits; the timeout makes a writer queue
      // instead of failing at once when another connection holds the write lock.
      enableWAL: true,
      timeout: 5000,
    };
  }
  return {
    ...common,
    type: 'mysql',
    driver: strictMysql2,
    host: database.host,
    port: database.port,
    username: database.username,
    password: database.password,
    database: database.database,
    charset: 'utf8mb4_unicode_ci',
    timezone: 'Z',
    // BIGINT ids come back as strings so no client loses precision past 2^53.
    supportBigNumbers: true,
    bigNumberStrings: true,
    poolSize: database.poolSize,
    connectTimeout: 3000,
    // The consume path sends its whole transaction as one query (QuotaDatabase.batch). Every
    // value travels as an escaped `?` parameter, never spliced into SQL text.
    multipleStatements: true,
    extra: {
      enableKeepAlive: true,
      maxIdle: database.poolSize,
      idleTimeout: 60_000,
      decimalNumbers: true,
    },
  };
}
