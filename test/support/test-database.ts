import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection } from 'mysql2/promise';

export type TestDriver = 'mysql' | 'sqlite';

/** The run's database mode: `DB_CONNECTION=mysql npm test` runs every suite on MariaDB. */
export const testDriver: TestDriver = ['mysql', 'mariadb'].includes(process.env.DB_CONNECTION ?? '')
  ? 'mysql'
  : 'sqlite';

export const mysqlServer = {
  host: process.env.DB_HOST ?? '127.0.0.1',
  port: Number(process.env.DB_PORT ?? 3306),
  user: process.env.DB_USERNAME ?? 'root',
  password: process.env.DB_PASSWORD ?? '',
};

export const redisServer = {
  host: process.env.REDIS_HOST ?? '127.0.0.1',
  port: Number(process.env.REDIS_PORT ?? 6379),
};

export interface TestDatabase {
  readonly driver: TestDriver;
  /** Environment variables that point the service at this database. */
  readonly env: Record<string, string>;
  drop(): Promise<void>;
}

export function uniqueSuffix(): string {
  return `${process.pid}_${randomBytes(4).toString('hex')}`;
}

function assertTestName(name: string): void {
  // Never let a test point at a database that is not obviously disposable.
  if (!name.includes('test')) throw new Error(`refusing to use database "${name}": its name must contain "test"`);
}

async function withAdmin<T>(fn: (conn: Awaited<ReturnType<typeof createConnection>>) => Promise<T>): Promise<T> {
  const conn = await createConnection({ ...mysqlServer });
  try {
    return await fn(conn);
  } finally {
    await conn.end();
  }
}

export async function createTestDatabase(driver: TestDriver = testDriver): Promise<TestDatabase> {
  if (driver === 'mysql') {
    const name = `quota_test_${uniqueSuffix()}`;
    assertTestName(name);
    await withAdmin((c) => c.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`));
    return {
      driver,
      env: {
        DB_CONNECTION: 'mysql',
        DB_HOST: mysqlServer.host,
        DB_PORT: String(mysqlServer.port),
        DB_USERNAME: mysqlServer.user,
        DB_PASSWORD: mysqlServer.password,
        DB_DATABASE: name,
      },
      drop: () => withAdmin((c) => c.query(`DROP DATABASE IF EXISTS \`${name}\``)).then(() => undefined),
    };
  }
  const dir = mkdtempSync(join(tmpdir(), 'quota-test-'));
  const file = join(dir, 'quota-test.sqlite');
  assertTestName(file);
  return {
    driver,
    env: { DB_CONNECTION: 'sqlite', DB_DATABASE: file },
    drop: () => Promise.resolve(rmSync(dir, { recursive: true, force: true })),
  };
}
