import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { Pool } from 'mysql2';
import type { Logger } from 'pino';
import { Counter } from 'prom-client';
import { DataSource, type EntityManager, type QueryRunner } from 'typeorm';
import { ROOT_LOGGER } from '../common/logger.token';
import { AppConfig } from '../config/app-config';
import { MetricsRegistry } from '../metrics/metrics.module';
import { createBatchPool } from './data-source-options';
import { dialectOf, type SqlDialect } from './dialect';
import {
  dbErrorKind,
  type BatchOptions,
  type ExecResult,
  type SqlSession,
  type Statement,
  type TransactionOptions,
} from './sql-session';
import { exclusive, lockForWriting, serializesWrites } from './writer';

@Injectable()
export class DatabaseMetrics {
  readonly transactionRetries: Counter<'kind'>;

  constructor(registry: MetricsRegistry) {
    this.transactionRetries = new Counter({
      name: 'quota_transaction_retries_total',
      help: 'Quota transactions retried after a deadlock, lock-wait time-out or busy database file.',
      labelNames: ['kind'],
      registers: [registry],
    });
  }
}

/** Through a TypeORM QueryRunner: the embedded database, and MySQL work that needs an EntityManager. */
class QueryRunnerSession implements SqlSession {
  constructor(
    private readonly runner: QueryRunner,
    readonly sql: SqlDialect,
    readonly boundsStatementLockWait: boolean,
  ) {}

  get manager(): EntityManager {
    return this.runner.manager;
  }

  async rows<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    const result = await this.runner.query(sql, [...params], true);
    return (result.records ?? []) as T[];
  }

  async exec(sql: string, params: readonly unknown[] = []): Promise<ExecResult> {
    const result = await this.runner.query(sql, [...params], true);
    // TypeORM hands back mysql2's OK packet, or better-sqlite3's last inserted rowid.
    const raw = result.raw as { insertId?: number | string } | number | bigint | undefined;
    const insertId = typeof raw === 'object' && raw !== null ? raw.insertId : raw;
    return {
      affected: result.affected ?? 0,
      insertId: insertId === undefined || insertId === null ? null : String(insertId),
    };
  }
}

/**
 * A session over a TypeORM QueryRunner that is already in a transaction (writeTransaction's
 * manager): for the CLI, which has no QuotaDatabase but shares repositories written for sessions.
 */
export function queryRunnerSession(runner: QueryRunner): SqlSession {
  return new QueryRunnerSession(runner, dialectOf(runner.connection), false);
}

/** The mysql2 pool connection behind TypeORM's MySQL driver (same pool, same session setup). */
interface MysqlConnection {
  query(sql: string, params: unknown[], callback: (err: Error | null, result: unknown) => void): void;
  release(): void;
  destroy(): void;
}

/**
 * Straight on a mysql2 pool connection: the consume path's transaction is four or five round
 * trips, and TypeORM's per-query machinery (events, logging, promise wrappers) about doubled its
 * CPU cost in this process.
 */
class MysqlSession implements SqlSession {
  constructor(
    private readonly connection: MysqlConnection,
    readonly sql: SqlDialect,
    readonly boundsStatementLockWait: boolean,
  ) {}

  get manager(): EntityManager {
    throw new Error('this quota session has no EntityManager; open it with { entityManager: true }');
  }

  rows<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    return this.query(sql, params) as Promise<T[]>;
  }

  async exec(sql: string, params: readonly unknown[] = []): Promise<ExecResult> {
    const result = (await this.query(sql, params)) as { affectedRows?: number; insertId?: number | string };
    const insertId = result.insertId;
    return {
      affected: result.affectedRows ?? 0,
      insertId: insertId === undefined || insertId === null ? null : String(insertId),
    };
  }

  query(sql: string, params: readonly unknown[] = []): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.connection.query(sql, [...params], (err, result) => (err ? reject(err) : resolve(result)));
    });
  }
}

const DEFAULT_RETRIES = 3;

/** The kinds of failure after which a whole unit of work is run again. */
function retryable(kind: string | undefined, retryLockTimeouts: boolean): boolean {
  return (
    kind === 'deadlock' || kind === 'autoinc_lock' || kind === 'busy' || (kind === 'lock_timeout' && retryLockTimeouts)
  );
}

/**
 * The service's access to the database: reads, transactions with bounded retries of deadlocks
 * and busy files, the consume path's one-round-trip batch, and on the embedded database one
 * writer at a time.
 *
 * better-sqlite3 has a single connection that TypeORM shares between every caller, so two
 * interleaved transactions would nest as savepoints of each other. All work on SQLite (reads
 * included, so none sees another's uncommitted rows) therefore runs through the one writer queue
 * that every module's TypeORM writes share too (writer.ts).
 *
 * On MySQL the batch has a small pool of its own, the only one that accepts several statements
 * per query (DB_BATCH_POOL_SIZE); every other statement goes through TypeORM's pool, which does not.
 */
@Injectable()
export class QuotaDatabase implements OnModuleInit, OnModuleDestroy {
  readonly sql: SqlDialect;
  private mariaDb = false;
  private batchPool: Pool | undefined;

  constructor(
    private readonly dataSource: DataSource,
    private readonly metrics: DatabaseMetrics,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
    private readonly config: AppConfig,
  ) {
    this.sql = dialectOf(dataSource);
  }

  async onModuleInit(): Promise<void> {
    const database = this.config.database;
    if (database.kind !== 'mysql') return;
    this.batchPool = createBatchPool(database);
    try {
      const rows = await this.dataSource.query<{ version: string }[]>('SELECT VERSION() AS version');
      this.mariaDb = /mariadb/i.test(rows[0]?.version ?? '');
    } catch (err) {
      // Without the answer the plain statements are used; nothing depends on it for correctness.
      this.logger.warn({ err }, 'could not read the database version');
    }
  }

  async onModuleDestroy(): Promise<void> {
    const pool = this.batchPool;
    this.batchPool = undefined;
    if (pool) await new Promise<void>((resolve) => pool.end(() => resolve()));
  }

  get boundsStatementLockWait(): boolean {
    return this.mariaDb;
  }

  /** A read outside any transaction (sees only committed data). */
  async read<T>(work: (session: SqlSession) => Promise<T>): Promise<T> {
    if (!this.serializes) return this.withMysqlConnection(this.mainConnection(), work);
    return this.serialized(async () => {
      const runner = this.dataSource.createQueryRunner();
      try {
        return await work(new QueryRunnerSession(runner, this.sql, this.mariaDb));
      } finally {
        await runner.release();
      }
    });
  }

  async transaction<T>(work: (session: SqlSession) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    return this.retrying(options.retries ?? DEFAULT_RETRIES, true, () =>
      !this.serializes && !options.entityManager ? this.onceOnMysql(work) : this.serialized(() => this.once(work)),
    );
  }

  /** Whether batch() is available: on MySQL, through the pool that sends several statements per query. */
  get batches(): boolean {
    return this.sql.batches;
  }

  /**
   * A whole transaction in one round trip: START TRANSACTION, the statements and COMMIT sent as
   * one query. The server stops at the first statement that fails, so COMMIT runs only when all
   * of them succeeded; after a failure the transaction is rolled back and the error thrown.
   * Round trips are most of what a consume costs, on both sides of the connection, and a hot
   * member's row stays locked for one of them instead of four.
   */
  async batch(statements: readonly Statement[], options: BatchOptions = {}): Promise<ExecResult[]> {
    const pool = this.batchPool;
    if (!this.batches || !pool) throw new Error('batched transactions need MySQL');
    let sql = 'START TRANSACTION';
    const params: unknown[] = [];
    for (const statement of statements) {
      sql += ';\n' + statement.sql;
      for (const param of statement.params) params.push(param);
    }
    sql += ';\nCOMMIT';
    const connect = (): Promise<MysqlConnection> =>
      new Promise((resolve, reject) =>
        pool.getConnection((err, connection) => (err ? reject(err) : resolve(connection))),
      );
    const results = await this.retrying(options.retries ?? DEFAULT_RETRIES, options.retryLockTimeouts ?? true, () =>
      this.withMysqlConnection(connect(), async (session) => {
        try {
          return (await session.query(sql, params)) as { affectedRows?: number; insertId?: number | string }[];
        } catch (err) {
          await this.rollback(session, err);
          throw err;
        }
      }),
    );
    return results.slice(1, -1).map((result) => ({
      affected: result.affectedRows ?? 0,
      insertId: result.insertId === undefined || result.insertId === null ? null : String(result.insertId),
    }));
  }

  /** The embedded database: one connection, one writer (see the class comment). */
  private get serializes(): boolean {
    return serializesWrites(this.dataSource);
  }

  private async retrying<T>(retries: number, retryLockTimeouts: boolean, run: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await run();
      } catch (err) {
        const kind = dbErrorKind(err);
        if (!retryable(kind, retryLockTimeouts) || attempt >= retries) throw err;
        this.metrics.transactionRetries.inc({ kind });
        this.logger.debug({ kind, attempt }, 'retrying a transaction');
        // Jitter spreads the retries of transactions that collided so they do not collide again.
        await new Promise((resolve) => setTimeout(resolve, (attempt + 1) * (5 + Math.random() * 20)));
      }
    }
  }

  private async once<T>(work: (session: SqlSession) => Promise<T>): Promise<T> {
    const runner = this.dataSource.createQueryRunner();
    try {
      await runner.connect();
      await runner.startTransaction();
      let result: T;
      try {
        await lockForWriting(runner);
        result = await work(new QueryRunnerSession(runner, this.sql, this.mariaDb));
        await runner.commitTransaction();
      } catch (err) {
        if (runner.isTransactionActive) {
          await runner.rollbackTransaction().catch((rollbackErr: unknown) => {
            this.logger.warn({ err: rollbackErr }, 'rollback failed');
          });
        }
        throw err;
      }
      return result;
    } finally {
      await runner.release();
    }
  }

  private onceOnMysql<T>(work: (session: SqlSession) => Promise<T>): Promise<T> {
    return this.withMysqlConnection(this.mainConnection(), async (session) => {
      await session.query('START TRANSACTION');
      let result: T;
      try {
        result = await work(session);
        await session.query('COMMIT');
      } catch (err) {
        await this.rollback(session, err);
        throw err;
      }
      return result;
    });
  }

  /** A connection whose transaction could not be rolled back leaves the pool (see withMysqlConnection). */
  private async rollback(session: MysqlSession, cause?: unknown): Promise<void> {
    try {
      await session.query('ROLLBACK');
    } catch (rollbackErr) {
      this.logger.warn({ err: rollbackErr }, 'rollback failed');
      throw new BrokenConnection(cause);
    }
  }

  /** A connection of TypeORM's pool (single statements only). */
  private mainConnection(): Promise<MysqlConnection> {
    const driver = this.dataSource.driver as unknown as { obtainMasterConnection(): Promise<MysqlConnection> };
    return driver.obtainMasterConnection();
  }

  private async withMysqlConnection<T>(
    connecting: Promise<MysqlConnection>,
    work: (session: MysqlSession) => Promise<T>,
  ): Promise<T> {
    const connection = await connecting;
    try {
      const result = await work(new MysqlSession(connection, this.sql, this.mariaDb));
      connection.release();
      return result;
    } catch (err) {
      // A connection whose transaction could not be rolled back must not go back to the pool.
      if (err instanceof BrokenConnection) {
        connection.destroy();
        throw err.cause;
      }
      connection.release();
      throw err;
    }
  }

  /** On the embedded database, after every unit of work of any module queued before it (writer.ts). */
  private serialized<T>(work: () => Promise<T>): Promise<T> {
    return exclusive(this.dataSource, work);
  }
}

class BrokenConnection extends Error {
  constructor(override readonly cause: unknown) {
    super('the connection could not roll back');
  }
}
