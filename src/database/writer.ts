import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import { MIGRATIONS_TABLE } from './data-source-options';
import { dialectOf } from './dialect';
import { dbErrorKind } from './sql-session';

/**
 * The embedded database's single writer. better-sqlite3 gives TypeORM one connection that every
 * caller shares, so two units of work that interleaved would nest as savepoints of each other and
 * roll back together. Every unit of work on SQLite, from any module (the session API, users,
 * login failures, the audit log, health), therefore waits here for the one before it to finish.
 * On MySQL each has a pooled connection of its own and runs at once.
 */
const tails = new WeakMap<DataSource, Promise<unknown>>();

export function serializesWrites(dataSource: DataSource): boolean {
  return !dialectOf(dataSource).batches;
}

/** Runs `work` after every unit of work queued before it on this data source (embedded database only). */
export function exclusive<T>(dataSource: DataSource, work: () => Promise<T>): Promise<T> {
  if (!serializesWrites(dataSource)) return work();
  const tail = tails.get(dataSource) ?? Promise.resolve();
  const run = tail.then(work, work);
  tails.set(
    dataSource,
    run.catch(() => undefined),
  );
  return run;
}

/**
 * Takes the database file's write lock as the transaction begins (what BEGIN IMMEDIATE does), so
 * that another process writing the same file makes this one wait up to the busy timeout, instead
 * of failing at its first write with SQLITE_BUSY_SNAPSHOT after it has read. A no-op DELETE is
 * a write statement: it acquires the lock and changes nothing.
 */
export async function lockForWriting(runner: QueryRunner): Promise<void> {
  if (serializesWrites(runner.connection)) await runner.query(`DELETE FROM ${MIGRATIONS_TABLE} WHERE 0`);
}

/** Busy files (another process holds the write lock past the busy timeout) are retried this often. */
const BUSY_RETRIES = 3;

/** Reruns `run` while it fails with a busy database file (SQLITE_BUSY, SQLITE_BUSY_SNAPSHOT), up to a bound. */
export async function retryingBusy<T>(run: () => Promise<T>, retries = BUSY_RETRIES): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      if (dbErrorKind(err) !== 'busy' || attempt >= retries) throw err;
      await new Promise((resolve) => setTimeout(resolve, (attempt + 1) * (5 + Math.random() * 20)));
    }
  }
}

/**
 * A TypeORM transaction for modules that work with entities (users, the audit log): through the
 * single writer on the embedded database, with the write lock taken up front; busy files retried.
 */
export function writeTransaction<T>(dataSource: DataSource, work: (manager: EntityManager) => Promise<T>): Promise<T> {
  return retryingBusy(() =>
    exclusive(dataSource, async () => {
      const runner = dataSource.createQueryRunner();
      try {
        await runner.connect();
        await runner.startTransaction();
        let result: T;
        try {
          await lockForWriting(runner);
          result = await work(runner.manager);
          await runner.commitTransaction();
        } catch (err) {
          if (runner.isTransactionActive) await runner.rollbackTransaction().catch(() => undefined);
          throw err;
        }
        return result;
      } finally {
        await runner.release();
      }
    }),
  );
}

/** A single TypeORM statement outside a transaction (an update, an insert), through the single writer. */
export function write<T>(dataSource: DataSource, work: () => Promise<T>): Promise<T> {
  return retryingBusy(() => exclusive(dataSource, work));
}
