import type { DataSource } from 'typeorm';

/**
 * The SQL that differs between the two drivers, in one place. Business code writes its statements
 * once and takes the differing fragments from here; nothing outside src/database asks which driver
 * runs. Every fragment is fixed text (no value ever passes through it).
 */
export interface SqlDialect {
  /** For logs and metrics only; never branch on it. */
  readonly name: 'mysql' | 'sqlite';
  /** Appended to a SELECT that locks the rows it reads (SQLite has one writer and no row locks). */
  readonly forUpdate: string;
  /** Appended to a SELECT that share-locks the rows it reads. */
  readonly forShare: string;
  /** Appended to a SELECT that locks its rows and passes over rows another transaction holds. */
  readonly forUpdateSkipLocked: string;
  /** Whether an UPDATE can hand back its rows (RETURNING); otherwise the OK packet is the way. */
  readonly updateReturning: boolean;
  /** Whether a whole transaction can be sent as one multi-statement batch. */
  readonly batches: boolean;
  /** A statement that reads the database clock as `now_ms`, epoch milliseconds. */
  readonly nowMsSql: string;
  /** An index hint after a table name (MySQL's FORCE INDEX; nothing where the planner needs none). */
  forceIndex(index: string): string;
  /** The largest of the arguments (SQL expressions). */
  greatest(...expressions: string[]): string;
  /** The smallest of the arguments (SQL expressions). */
  least(...expressions: string[]): string;
  /**
   * The tail of a multi-row INSERT that updates the existing row on a key conflict: `add` columns
   * are added to the stored value, the other `updated` columns replace it.
   */
  upsertTail(keys: readonly string[], updated: readonly string[], add: readonly string[]): string;
  /** TypeORM find options that write-lock the rows found. */
  readonly pessimisticWrite: { lock?: { mode: 'pessimistic_write' } };
}

const MYSQL: SqlDialect = {
  name: 'mysql',
  forUpdate: ' FOR UPDATE',
  forShare: ' LOCK IN SHARE MODE',
  forUpdateSkipLocked: ' FOR UPDATE SKIP LOCKED',
  updateReturning: false,
  batches: true,
  nowMsSql: 'SELECT ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000) AS now_ms',
  forceIndex: (index) => ` FORCE INDEX (${index})`,
  greatest: (...expressions) => `GREATEST(${expressions.join(', ')})`,
  least: (...expressions) => `LEAST(${expressions.join(', ')})`,
  upsertTail: (_keys, updated, add) =>
    `ON DUPLICATE KEY UPDATE ${updated
      .map((c) => (add.includes(c) ? `${c} = ${c} + VALUES(${c})` : `${c} = VALUES(${c})`))
      .join(', ')}`,
  pessimisticWrite: { lock: { mode: 'pessimistic_write' } },
};

const SQLITE: SqlDialect = {
  name: 'sqlite',
  forUpdate: '',
  forShare: '',
  forUpdateSkipLocked: '',
  updateReturning: true,
  batches: false,
  nowMsSql: "SELECT CAST(ROUND((julianday('now') - 2440587.5) * 86400000) AS INTEGER) AS now_ms",
  forceIndex: () => '',
  // SQLite's scalar MAX/MIN with several arguments are GREATEST/LEAST.
  greatest: (...expressions) => `MAX(${expressions.join(', ')})`,
  least: (...expressions) => `MIN(${expressions.join(', ')})`,
  upsertTail: (keys, updated, add) =>
    `ON CONFLICT (${keys.join(', ')}) DO UPDATE SET ${updated
      .map((c) => (add.includes(c) ? `${c} = ${c} + excluded.${c}` : `${c} = excluded.${c}`))
      .join(', ')}`,
  pessimisticWrite: {},
};

/** The dialect of a TypeORM data source. */
export function dialectOf(dataSource: DataSource): SqlDialect {
  return dataSource.options.type === 'better-sqlite3' ? SQLITE : MYSQL;
}

/** `?, ?, ?`: n placeholders for an IN list or a VALUES row. */
export function marks(n: number): string {
  return new Array<string>(n).fill('?').join(', ');
}
