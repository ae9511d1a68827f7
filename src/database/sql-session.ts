import type { EntityManager } from 'typeorm';
import type { SqlDialect } from './dialect';

export interface ExecResult {
  /** Rows matched (mysql2 reports found rows) or changed (SQLite). */
  readonly affected: number;
  /** The OK packet's insert id (MySQL) or the last inserted rowid (SQLite), as a string. */
  readonly insertId: string | null;
}

export type DbErrorKind =
  | 'duplicate'
  | 'foreign_key'
  | 'check'
  | 'deadlock'
  | 'lock_timeout'
  | 'autoinc_lock'
  /**
   * The embedded database's file is locked by another connection (SQLITE_BUSY after the busy
   * timeout, or SQLITE_BUSY_SNAPSHOT: a WAL read transaction that would write after another
   * writer committed). The unit of work is safe to run again from the start.
   */
  | 'busy';

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
  SQLITE_BUSY: 'busy',
  SQLITE_BUSY_SNAPSHOT: 'busy',
  SQLITE_BUSY_RECOVERY: 'busy',
  SQLITE_BUSY_TIMEOUT: 'busy',
  SQLITE_LOCKED: 'busy',
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
  /** The SQL fragments that differ between the drivers. */
  readonly sql: SqlDialect;
  /**
   * Whether one statement's lock wait can be bounded (`SET STATEMENT var=... FOR <stmt>`, MariaDB;
   * not MySQL 8 or SQLite): a claim of a key held by an uncommitted request then fails at once.
   */
  readonly boundsStatementLockWait: boolean;
  /**
   * For collaborators that take an EntityManager (the audit log) inside the same transaction;
   * only sessions opened with `{ entityManager: true }` have one.
   */
  readonly manager: EntityManager;
  rows<T>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  exec(sql: string, params?: readonly unknown[]): Promise<ExecResult>;
}

export interface TransactionOptions {
  /** Deadlocks, lock-wait time-outs and busy files are retried this many times (the whole unit of work reruns). */
  readonly retries?: number;
  /** The work needs `session.manager` (for the audit log and TypeORM repositories). */
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
