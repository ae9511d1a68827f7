import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import type { Logger } from 'pino';
import { DataSource, type EntityManager, type QueryRunner } from 'typeorm';
import { ROOT_LOGGER } from '../common/logger.token';
import { QuotaMetrics } from './quota.metrics';

export type Dialect = 'mysql' | 'sqlite';

export interface ExecResult {
  /** Rows matched (mysql2 reports found rows) or changed (SQLite). */
  readonly affected: number;
  /** The OK packet's insert id (MySQL) or the last inserted rowid (SQLite), as a string. */
  readonly insertId: string | null;
}

export type DbErrorKind = 'duplicate' | 'foreign_key' | 'check' | 'deadlock' | 'lock_timeout' | 'autoinc_lock';

const MYSQL_ERRNO: Record<number, DbErrorKind> = {
  1062: 'duplicate',
  1451: 'foreign_key',
  1452: 'foreign_key',
  3819: 'check',
  4025: 'check',
  1213: 'deadlock',
  1205: 'lock_timeout',
  // "Failed to read auto-increment value from storage engine": the table's AUTO-INC lock was lost
  // to a deadlock or a wait. No statement of this service should provoke it (see LedgerBulkService);
  // a server under other load still can, and the unit of work is then safe to run again.
  1467: 'autoinc_lock',
};

const SQLITE_CODES: Record<string, DbErrorKind> = {
  SQLITE_CONSTRAINT_PRIMARYKEY: 'duplicate',
  SQLITE_CONSTRAINT_UNIQUE: 'duplicate',
  SQLITE_CONSTRAINT_FOREIGNKEY: 'foreign_key',
  SQLITE_CONSTRAINT_CHECK: 'check',
};

/** What a driver error means for the ledger, on either driver; undefined for anything else. */
export function dbErrorKind(error: unknown): DbErrorKind | undefined {
  const candidate = error as { errno?: unknown; code?: unknown; driverError?: { errno?: unknown; code?: unknown } };
  const errno = candidate?.driverError?.errno ?? candidate?.errno;
  if (typeof errno === 'number' && MYSQL_ERRNO[errno]) return MYSQL_ERRNO[errno];
  const code = candidate?.driverError?.code ?? candidate?.code;
  if (typeof code === 'string') return SQLITE_CODES[code];
  return undefined;
}

/** SQL written for reading, as sent: runs of whitespace (layout) become one space. No literal may contain any. */
export function compactSql(sql: string): string {
  return sql.replace(/\s+/g, ' ').trim();
}

/** "YYYY-MM-DD HH:MM:SS.mmm" in UTC: what both drivers store in DATETIME(3) (MySQL sessions run in UTC). */
export function sqlTimestamp(date: Date): string {
  return date.toISOString().replace('T', ' ').replace('Z', '');
}

/** A DATETIME read back: mysql2 gives a Date (UTC), better-sqlite3 the stored UTC text. */
export function readTimestamp(value: unknown): Date {
  if (value instanceof Date) return value;
  if (typeof value === 'string') return new Date(`${value.replace(' ', 'T')}Z`);
  throw new Error(`unexpected timestamp value ${String(value)}`);
}

export function readNullableTimestamp(value: unknown): Date | null {
  return value === null || value === undefined ? null : readTimestamp(value);
}

/** Booleans come back as 0/1 on both drivers. */
export function readBoolean(value: unknown): boolean {
  return value === true || value === 1 || value === '1';
}

/** A statement runner bound to one connection (inside a transaction, or for one read). */
export interface SqlSession {
  readonly dialect: Dialect;
  /** MariaDB understands `SET STATEMENT var=... FOR <stmt>`; MySQL 8 does not. */
  readonly isMariaDb: boolean;
  /**
   * For collaborators that take an EntityManager (the audit log) inside the same transaction;
   * only sessions opened with `{ entityManager: true }` have one.
   */
  readonly manager: EntityManager;
  rows<T>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  exec(sql: string, params?: readonly unknown[]): Promise<ExecResult>;
}

/** Through a TypeORM QueryRunner: the embedded database, and MySQL work that needs an EntityManager. */
class QueryRunnerSession implements SqlSession {
  constructor(
    private readonly runner: QueryRunner,
    readonly dialect: Dialect,
    readonly isMariaDb: boolean,
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
    const insertId =
      this.dialect === 'mysql'
        ? (result.raw as { insertId?: number | string } | undefined)?.insertId
        : (result.raw as number | bigint | undefined);
    return {
      affected: result.affected ?? 0,
      insertId: insertId === undefined || insertId === null ? null : String(insertId),
    };
  }
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
  readonly dialect = 'mysql' as const;

  constructor(
    private readonly connection: MysqlConnection,
    readonly isMariaDb: boolean,
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

export interface TransactionOptions {
  /** Deadlocks and lock-wait time-outs are retried this many times (the whole unit of work reruns). */
  readonly retries?: number;
  /** The work needs `session.manager` (for the audit log). */
  readonly entityManager?: boolean;
}

/** One statement of a batch, with its `?` parameters. */
export interface Statement {
  readonly sql: string;
  readonly params: readonly unknown[];
}

export interface BatchOptions {
  /** As for transactions; deadlocks are always retried. */
  readonly retries?: number;
  /** Lock wait time-outs are the caller's to interpret (a statement that was told not to wait). */
  readonly retryLockTimeouts?: boolean;
}

const DEFAULT_RETRIES = 3;

/**
 * The quota module's access to the database: transactions with bounded deadlock retries on
 * MySQL, and on the embedded database one writer at a time.
 *
 * better-sqlite3 has a single connection that TypeORM shares between every caller, so two
 * interleaved transactions would nest as savepoints of each other. All quota work on SQLite
 * (reads included, so none sees another's uncommitted rows) therefore runs through one queue.
 */
@Injectable()
export class QuotaDatabase implements OnModuleInit {
  readonly dialect: Dialect;
  private mariaDb = false;
  private sqliteTail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly dataSource: DataSource,
    private readonly metrics: QuotaMetrics,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
  ) {
    this.dialect = dataSource.options.type === 'better-sqlite3' ? 'sqlite' : 'mysql';
  }

  async onModuleInit(): Promise<void> {
    if (this.dialect !== 'mysql') return;
    try {
      const rows = await this.dataSource.query<{ version: string }[]>('SELECT VERSION() AS version');
      this.mariaDb = /mariadb/i.test(rows[0]?.version ?? '');
    } catch (err) {
      // Without the answer the plain statements are used; nothing depends on it for correctness.
      this.logger.warn({ err }, 'could not read the database version');
    }
  }

  get isMariaDb(): boolean {
    return this.mariaDb;
  }

  /** A read outside any transaction (sees only committed data). */
  async read<T>(work: (session: SqlSession) => Promise<T>): Promise<T> {
    if (this.dialect === 'mysql') return this.withMysqlConnection(work);
    return this.serialized(async () => {
      const runner = this.dataSource.createQueryRunner();
      try {
        return await work(new QueryRunnerSession(runner, this.dialect, this.mariaDb));
      } finally {
        await runner.release();
      }
    });
  }

  async transaction<T>(work: (session: SqlSession) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    return this.retrying(options.retries ?? DEFAULT_RETRIES, true, () =>
      this.dialect === 'mysql' && !options.entityManager
        ? this.onceOnMysql(work)
        : this.serialized(() => this.once(work)),
    );
  }

  /** Whether batch() is available: on MySQL, where the pool sends several statements per query. */
  get batches(): boolean {
    return this.dialect === 'mysql';
  }

  /**
   * A whole transaction in one round trip: START TRANSACTION, the statements and COMMIT sent as
   * one query. The server stops at the first statement that fails, so COMMIT runs only when all
   * of them succeeded; after a failure the transaction is rolled back and the error thrown.
   * Round trips are most of what a consume costs, on both sides of the connection, and a hot
   * member's row stays locked for one of them instead of four.
   */
  async batch(statements: readonly Statement[], options: BatchOptions = {}): Promise<ExecResult[]> {
    if (!this.batches) throw new Error('batched transactions need MySQL');
    let sql = 'START TRANSACTION';
    const params: unknown[] = [];
    for (const statement of statements) {
      sql += `;\n${statement.sql}`;
      for (const param of statement.params) params.push(param);
    }
    sql += ';\nCOMMIT';
    const results = await this.retrying(options.retries ?? DEFAULT_RETRIES, options.retryLockTimeouts ?? true, () =>
      this.withMysqlConnection(async (session) => {
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

  private async retrying<T>(retries: number, retryLockTimeouts: boolean, run: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await run();
      } catch (err) {
        const kind = dbErrorKind(err);
        const retryable =
          kind === 'deadlock' || kind === 'autoinc_lock' || (kind === 'lock_timeout' && retryLockTimeouts);
        if (!retryable || attempt >= retries) throw err;
        this.metrics.transactionRetries.inc({ kind });
        this.logger.debug({ kind, attempt }, 'retrying a quota transaction');
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
        result = await work(new QueryRunnerSession(runner, this.dialect, this.mariaDb));
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
    return this.withMysqlConnection(async (session) => {
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

  private async withMysqlConnection<T>(work: (session: MysqlSession) => Promise<T>): Promise<T> {
    const driver = this.dataSource.driver as unknown as { obtainMasterConnection(): Promise<MysqlConnection> };
    const connection = await driver.obtainMasterConnection();
    try {
      const result = await work(new MysqlSession(connection, this.mariaDb));
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

  private serialized<T>(work: () => Promise<T>): Promise<T> {
    if (this.dialect !== 'sqlite') return work();
    const run = this.sqliteTail.then(work, work);
    this.sqliteTail = run.catch(() => undefined);
    return run;
  }
}

class BrokenConnection extends Error {
  constructor(override readonly cause: unknown) {
    super('the connection could not roll back');
  }
}
