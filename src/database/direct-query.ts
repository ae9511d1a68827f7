import type { DataSource } from 'typeorm';

interface Mysql2Pool {
  execute(sql: string, params: unknown[], callback: (err: Error | null, rows: unknown) => void): void;
}

/**
 * A single read on the hot path (one primary-key lookup per request). On MySQL it goes straight to
 * the mysql2 pool behind TypeORM (same connections, same session settings), skipping TypeORM's
 * per-query runner, which costs more CPU than the query itself. It runs as a prepared statement
 * (prepared once per connection, then executed), so the server does not parse it again each time.
 * Elsewhere it is a plain query.
 */
export function directQuery<T>(dataSource: DataSource, sql: string, params: unknown[]): Promise<T[]> {
  const pool = (dataSource.driver as { pool?: Mysql2Pool }).pool;
  if (dataSource.options.type !== 'mysql' || !pool) return dataSource.query<T[]>(sql, params);
  return new Promise((resolve, reject) => {
    pool.execute(sql, params, (err, rows) => (err ? reject(err) : resolve(rows as T[])));
  });
}
