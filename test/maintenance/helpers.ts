import request from 'supertest';
import { DataSource } from 'typeorm';
import { readTimestamp } from '../../src/database/sql-session';
import { bearer } from '../support/auth';
import { sql } from '../support/quota-factories';
import type { TestApp } from '../support/test-app';

export const MAINTENANCE = '/api/v1/admin/maintenance';

export interface StoredSwitch {
  read_only: boolean;
  reason: string | null;
  since: string | null;
  changed_by: string | null;
}

/** The switch row as stored. */
export async function storedSwitch(t: TestApp): Promise<StoredSwitch> {
  const rows = await sql<Record<string, unknown>>(
    t,
    'SELECT read_only, reason, since, changed_by FROM quota_maintenance WHERE id = 1',
  );
  expect(rows).toHaveLength(1);
  const since = rows[0].since as Date | string | null;
  return {
    read_only: Number(rows[0].read_only) === 1,
    reason: (rows[0].reason as string | null) ?? null,
    since: since === null ? null : readTimestamp(since).toISOString(),
    changed_by: (rows[0].changed_by as string | null) ?? null,
  };
}

export async function setReadOnly(t: TestApp, adminToken: string, readOnly: boolean, reason?: string) {
  const res = await request(t.server)
    .put(MAINTENANCE)
    .set(bearer(adminToken))
    .send(reason === undefined ? { read_only: readOnly } : { read_only: readOnly, reason });
  expect({ status: res.status, read_only: res.body?.data?.read_only }).toEqual({ status: 200, read_only: readOnly });
  return res;
}

/** Every table of the database, every row: to prove that nothing at all changed. */
export async function wholeDatabase(t: TestApp): Promise<Record<string, unknown[]>> {
  const ds = t.app.get(DataSource);
  const tables =
    ds.options.type === 'mysql'
      ? (await ds.query<Record<string, string>[]>('SHOW TABLES')).map((row) => Object.values(row)[0])
      : (
          await ds.query<{ name: string }[]>(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
          )
        ).map((row) => row.name);
  const snapshot: Record<string, unknown[]> = {};
  for (const table of tables.sort()) {
    const rows = await ds.query<Record<string, unknown>[]>(`SELECT * FROM ${table}`);
    snapshot[table] = rows
      .map((row) => JSON.stringify(row, (_key, value: unknown) => (typeof value === 'bigint' ? String(value) : value)))
      .sort();
  }
  return snapshot;
}
