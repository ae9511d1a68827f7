import { mkdirSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname } from 'node:path';
import * as mysql2 from 'mysql2';
import type { DataSourceOptions } from 'typeorm';
import type { DatabaseConfig, MysqlDatabaseConfig } from '../config/app-config';
import { mysqlSslOptions } from '../config/tls';

/**
 * Every pooled MySQL connection runs in strict mode and UTC, whatever the server's defaults, so an
 * out-of-range value is an error (never clipped) and timestamps never shift.
 */
const SESSION_SETUP_SQL =
  "SET SESSION sql_mode = 'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION,NO_ZERO_DATE,NO_ZERO_IN_DATE', time_zone = '+00:00'";

/**
 * Node's certificate errors ("self-signed certificate in certificate chain") name neither the
 * connection nor the setting to look at; the service's start-up line and the CLI print this
 * message as it is, so it says both. Connections that did come up are not touched.
 */
function explainTlsFailure(err: NodeJS.ErrnoException, host: string | undefined): NodeJS.ErrnoException {
  const original = err.message;
  if (original.startsWith('MySQL TLS')) return err;
  if (err.code === 'HANDSHAKE_SSL_ERROR') {
    // mysql2 sends no server name for an address, and Node then checks the certificate for "localhost".
    const hint =
      host !== undefined && isIP(host) !== 0 && /altnames/.test(original)
        ? `DB_HOST is an IP address, which the MySQL client checks as the name "localhost"; set DB_HOST to a name the certificate lists`
        : "DB_SSL_CA must name the authority that signed the server's certificate, and DB_HOST a name in it";
    err.message = `MySQL TLS handshake failed: ${original} (${hint})`;
  } else if (err.code === 'HANDSHAKE_NO_SSL_SUPPORT') {
    err.message = 'MySQL TLS: the server does not offer TLS; with DB_SSL=true the service never connects in plain text';
  } else {
    return err;
  }
  // Printers such as the TypeORM CLI show the stack, whose first line was written with the old message.
  if (err.stack) err.stack = err.stack.replace(original, err.message);
  return err;
}

type GetConnection = (callback: (err: NodeJS.ErrnoException | null, connection: mysql2.PoolConnection) => void) => void;

const strictMysql2 = {
  ...mysql2,
  createPool(options: mysql2.PoolOptions) {
    const pool = mysql2.createPool(options);
    pool.on('connection', (connection) => {
      connection.query(SESSION_SETUP_SQL);
    });
    if (options.ssl) {
      // Every pool user (TypeORM's start-up check, queries, directQuery) asks through getConnection.
      const getConnection = (pool.getConnection as GetConnection).bind(pool);
      (pool as { getConnection: GetConnection }).getConnection = (callback) =>
        getConnection((err, connection) => callback(err && explainTlsFailure(err, options.host), connection));
    }
    return pool;
  },
};

export const MIGRATIONS_TABLE = 'migrations';

/**
 * What the database holds, composed at the top (src/app.data-source.ts) from every module's
 * entities and the migrations: database/ knows no feature module.
 */
export interface DatabaseSchema {
  readonly entities: NonNullable<DataSourceOptions['entities']>;
  readonly migrations: NonNullable<DataSourceOptions['migrations']>;
}

export function buildDataSourceOptions(
  database: DatabaseConfig,
  migrationsRun: boolean,
  schema: DatabaseSchema,
): DataSourceOptions {
  const common = {
    entities: schema.entities,
    migrations: schema.migrations,
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
    ...sessionOptions(database),
    poolSize: database.poolSize,
    // Only the consume batch's own pool (createBatchPool) accepts several statements per query,
    // so a value ever spliced into SQL text elsewhere cannot stack a second statement.
    multipleStatements: false,
    extra: {
      enableKeepAlive: true,
      maxIdle: database.poolSize,
      idleTimeout: 60_000,
      decimalNumbers: true,
    },
  };
}

/** What both MySQL pools share: character set, UTC, number handling, time-out and TLS. */
function sessionOptions(database: MysqlDatabaseConfig) {
  return {
    charset: 'utf8mb4_unicode_ci',
    timezone: 'Z',
    // BIGINT ids come back as strings so no client loses precision past 2^53.
    supportBigNumbers: true,
    bigNumberStrings: true,
    connectTimeout: 3000,
    // With DB_SSL every pooled connection is TLS with the certificate verified; mysql2 never falls
    // back to plain text when the server offers no TLS, it refuses to connect.
    ssl: database.tls ? mysqlSslOptions(database.tls) : undefined,
  };
}

/**
 * The pool of QuotaDatabase.batch: the consume and refund transactions sent as one query, so the
 * only connections with `multipleStatements`. Same session setup (strict mode, UTC), TLS and value
 * handling as TypeORM's pool; DB_BATCH_POOL_SIZE connections. Every value travels as an escaped
 * `?` parameter, never spliced into SQL text (src/database/sql-interpolation.spec.ts).
 */
export function createBatchPool(database: MysqlDatabaseConfig): mysql2.Pool {
  return strictMysql2.createPool({
    host: database.host,
    port: database.port,
    user: database.username,
    password: database.password,
    database: database.database,
    ...sessionOptions(database),
    decimalNumbers: true,
    multipleStatements: true,
    connectionLimit: database.batchPoolSize,
    maxIdle: database.batchPoolSize,
    idleTimeout: 60_000,
    enableKeepAlive: true,
  });
}
