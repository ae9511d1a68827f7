import type { DataSource } from 'typeorm';

interface Mysql2Pool {
  query(sql: string, params: unknown[], callback: (err: Error | null, rows: unknown) => void): void;
}

/**
 * A single read on the hot path (one primary-key lookup per request). On MySQL it goes straight to
 * the mysql2 pool behind TypeORM (same connections, same session settings), skipping TypeORM's
 * per-query runner, which costs more CPU than the query itself; elsewhere it is a plain query.
 */
export function directQuery<T>(dataSource: DataSource, sql: string, params: unknown[]): Promise<T[]> {
  const pool = (dataSource.driver as { pool?: Mysql2Pool }).pool;
  if (dataSource.options.type !== 'mysql' || !pool) return dataSource.query<T[]>(sql, params);
  return new Promise((resolve, reject) => {
    pool.query(sql, params, (err, rows) => (err ? reject(err) : resolve(rows as T[])));
  });
}
