import { DataSource } from 'typeorm';
import { appDataSourceOptions } from '../../src/app.data-source';
import { MIGRATIONS_TABLE } from '../../src/database/data-source-options';
import { MIGRATIONS } from '../../src/database/migrations';
import { loadConfig } from '../../src/config/app-config';
import { readTimestamp } from '../../src/database/sql-session';
import { createTestDatabase, testDriver, type TestDatabase } from '../support/test-database';

const SEED_TABLES = ['member_quota_config', 'members', 'member_quota_history'];

describe(`migrations on ${testDriver}`, () => {
  let database: TestDatabase;
  let dataSource: DataSource;

  beforeAll(async () => {
    database = await createTestDatabase();
    const config = loadConfig({ ...database.env, APP_ENV: 'testing' });
    dataSource = new DataSource(appDataSourceOptions(config.database, false));
    await dataSource.initialize();
  });
  afterAll(async () => {
    await dataSource.destroy();
    await database.drop();
  });

  async function newestApplied(): Promise<string | undefined> {
    const [row] = await dataSource.query<{ name: string }[]>(
      `SELECT name FROM ${MIGRATIONS_TABLE} ORDER BY timestamp DESC LIMIT 1`,
    );
    return row?.name;
  }

  /** Undoes the newest migrations until `name` is the newest one still applied. */
  async function undoAfter(name: string): Promise<void> {
    while ((await newestApplied()) !== name) await dataSource.undoLastMigration();
  }

  /** Undoes the newest migrations down to and including `name`. */
  async function undoThrough(name: string): Promise<void> {
    for (;;) {
      const newest = await newestApplied();
      await dataSource.undoLastMigration();
      if (newest === name) return;
    }
  }

  async function tables(): Promise<string[]> {
    const runner = dataSource.createQueryRunner();
    try {
      const found: string[] = [];
      for (const name of SEED_TABLES) if (await runner.hasTable(name)) found.push(name);
      return found;
    } finally {
      await runner.release();
    }
  }

  it('go up, all the way down, and up again', async () => {
    expect(await dataSource.showMigrations()).toBe(true);

    const applied = await dataSource.runMigrations();
    expect(applied).toHaveLength(MIGRATIONS.length);
    expect(await dataSource.showMigrations()).toBe(false);
    expect(await tables()).toEqual(SEED_TABLES);

    for (let i = 0; i < MIGRATIONS.length; i++) await dataSource.undoLastMigration();
    expect(await tables()).toEqual([]);
    expect(await dataSource.showMigrations()).toBe(true);

    await dataSource.runMigrations();
    expect(await tables()).toEqual(SEED_TABLES);
    expect(await dataSource.showMigrations()).toBe(false);
  });

  it('external ids compare exactly; reverting that step restores the old comparison', async () => {
    await dataSource.query("INSERT INTO member_quota_config (membership_type, max_quota) VALUES ('exact', 5)");
    await dataSource.query(
      "INSERT INTO members (external_id, membership_type, quota_balance) VALUES ('Case-1', 'exact', 1), ('case-1', 'exact', 1)",
    );
    expect(await dataSource.showMigrations()).toBe(false);
    await undoAfter('ExactExternalIds1764900000000');
    if (testDriver === 'mysql') {
      // A case-insensitive unique index cannot hold both: down() refuses rather than lose one.
      await expect(dataSource.undoLastMigration()).rejects.toThrow();
      await dataSource.query("DELETE FROM members WHERE external_id = 'case-1'");
      await dataSource.undoLastMigration();
      await expect(
        dataSource.query(
          "INSERT INTO members (external_id, membership_type, quota_balance) VALUES ('CASE-1', 'exact', 1)",
        ),
      ).rejects.toThrow();
    } else {
      await dataSource.undoLastMigration();
    }
    await dataSource.runMigrations();
    expect(await dataSource.showMigrations()).toBe(false);
    await dataSource.query(
      "INSERT INTO members (external_id, membership_type, quota_balance) VALUES ('cASE-1', 'exact', 1)",
    );
    const rows = await dataSource.query<{ external_id: string }[]>(
      "SELECT external_id FROM members WHERE membership_type = 'exact' ORDER BY external_id",
    );
    expect(rows.map((r) => r.external_id).sort()).toEqual(
      (testDriver === 'mysql' ? ['Case-1', 'cASE-1'] : ['Case-1', 'case-1', 'cASE-1']).sort(),
    );
    await dataSource.query("DELETE FROM members WHERE membership_type = 'exact'");
    await dataSource.query("DELETE FROM member_quota_config WHERE membership_type = 'exact'");
  });

  it('stores the types of a membership change as data, filled from the notes of older rows', async () => {
    await dataSource.query(
      "INSERT INTO member_quota_config (membership_type, max_quota) VALUES ('type-a', 5), ('type-b', 9)",
    );
    await dataSource.query(
      "INSERT INTO members (external_id, membership_type, quota_balance) VALUES ('typed-1', 'type-b', 9)",
    );
    const [member] = await dataSource.query<{ id: unknown }[]>("SELECT id FROM members WHERE external_id = 'typed-1'");
    await undoThrough('MembershipTypeHistory1765000000000');
    const columns = async () =>
      (await dataSource.createQueryRunner().getTable('member_quota_history'))!.columns.map((c) => c.name);
    expect(await columns()).not.toContain('from_membership_type');
    const notes = ['type-a -> type-b', 'type a -> type-b', 'type-a->type-b', null];
    for (const note of notes) {
      await dataSource.query(
        "INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor, note) VALUES (?, 4, 9, 'membership_change', 'system', ?)",
        [member.id, note],
      );
    }
    await dataSource.runMigrations();
    expect(await dataSource.showMigrations()).toBe(false);
    expect(await columns()).toEqual(expect.arrayContaining(['from_membership_type', 'to_membership_type']));
    const rows = await dataSource.query<
      { note: string | null; from_membership_type: string; to_membership_type: string }[]
    >(
      'SELECT note, from_membership_type, to_membership_type FROM member_quota_history WHERE member_id = ? ORDER BY id',
      [member.id],
    );
    expect(rows.map((r) => [r.note, r.from_membership_type, r.to_membership_type])).toEqual([
      ['type-a -> type-b', 'type-a', 'type-b'],
      ['type a -> type-b', null, null],
      ['type-a->type-b', null, null],
      [null, null, null],
    ]);
    // The trigger is back: the ledger stays append-only.
    await expect(
      dataSource.query("UPDATE member_quota_history SET note = 'x' WHERE member_id = ?", [member.id]),
    ).rejects.toThrow(/append-only/);
  });

  it("fills the members' daily rollups with the rows the tail processor has folded, and only those", async () => {
    await dataSource.query("INSERT INTO member_quota_config (membership_type, max_quota) VALUES ('daily-a', 50)");
    await dataSource.query(
      "INSERT INTO members (external_id, membership_type, quota_balance) VALUES ('daily-1', 'daily-a', 50)",
    );
    const [member] = await dataSource.query<{ id: unknown }[]>("SELECT id FROM members WHERE external_id = 'daily-1'");
    await undoThrough('MemberDailyRollups1765200000000');
    const rows: Array<[number, string, string]> = [
      [-1, 'consumption', '2026-01-01 10:00:00.000'],
      [-2, 'consumption', '2026-01-01 11:00:00.000'], // in an open gap: folded when it appears
      [-4, 'consumption', '2026-01-01 23:59:59.999'],
      [3, 'refund', '2026-01-02 00:00:00.000'], // the watermark
      [-8, 'consumption', '2026-01-02 00:00:01.000'], // after the watermark
    ];
    const ids: number[] = [];
    for (const [delta, reason, at] of rows) {
      await dataSource.query(
        "INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor, created_at) VALUES (?, ?, 0, ?, 'system', ?)",
        [member.id, delta, reason, at],
      );
      const [row] = await dataSource.query<{ id: unknown }[]>('SELECT MAX(id) AS id FROM member_quota_history');
      ids.push(Number(row.id));
    }
    await dataSource.query("UPDATE quota_analytics_state SET last_history_id = ? WHERE name = 'history_tail'", [
      ids[3],
    ]);
    await dataSource.query('INSERT INTO quota_analytics_gaps (from_id, to_id) VALUES (?, ?)', [ids[1], ids[1]]);
    try {
      await dataSource.runMigrations();
      expect(await dataSource.showMigrations()).toBe(false);
      const daily = await dataSource.query<
        { day_start: unknown; reason: string; row_count: unknown; units: unknown }[]
      >(
        'SELECT day_start, reason, row_count, units FROM quota_member_daily WHERE member_id = ? ORDER BY day_start, reason',
        [member.id],
      );
      expect(
        daily.map((d) => [readTimestamp(d.day_start).toISOString(), d.reason, Number(d.row_count), Number(d.units)]),
      ).toEqual([
        ['2026-01-01T00:00:00.000Z', 'consumption', 2, -5],
        ['2026-01-02T00:00:00.000Z', 'refund', 1, 3],
      ]);
    } finally {
      await dataSource.query("UPDATE quota_analytics_state SET last_history_id = 0 WHERE name = 'history_tail'");
      await dataSource.query('DELETE FROM quota_analytics_gaps');
      await dataSource.query('DELETE FROM quota_member_daily');
    }
  });

  it("creates the seed's indexes", async () => {
    const runner = dataSource.createQueryRunner();
    try {
      const config = await runner.getTable('member_quota_config');
      const history = await runner.getTable('member_quota_history');
      const configIndexes = config!.indices.map((i) => i.name);
      const historyIndexes = history!.indices.map((i) => i.name);
      expect(configIndexes).toEqual(
        expect.arrayContaining(['idx_member_quota_config_membership_type', 'idx_member_quota_config_is_active']),
      );
      expect(historyIndexes).toEqual(
        expect.arrayContaining([
          'idx_member_quota_history_member_id',
          'idx_member_quota_history_reason',
          'idx_member_quota_history_created_at',
        ]),
      );
      // Balances in time: a member's ledger in time order, with what a statement's totals read.
      expect(history!.indices.find((i) => i.name === 'idx_member_quota_history_member_time')?.columnNames).toEqual([
        'member_id',
        'created_at',
        'id',
        'reason',
        'delta',
      ]);
    } finally {
      await runner.release();
    }
  });

  it('enforces the schema rules in the database itself', async () => {
    await dataSource.query(
      "INSERT INTO member_quota_config (membership_type, max_quota, reset_period) VALUES ('regular', 50, 'monthly')",
    );
    await expect(
      dataSource.query("INSERT INTO member_quota_config (membership_type, max_quota) VALUES ('regular', 10)"),
    ).rejects.toThrow();
    await expect(
      dataSource.query("INSERT INTO member_quota_config (membership_type, max_quota) VALUES ('negative', -1)"),
    ).rejects.toThrow();
    await expect(
      dataSource.query(
        "INSERT INTO member_quota_config (membership_type, max_quota, reset_period) VALUES ('x', 1, 'hourly')",
      ),
    ).rejects.toThrow();

    await dataSource.query(
      "INSERT INTO members (external_id, membership_type, quota_balance) VALUES ('m-1', 'regular', 5)",
    );
    await expect(
      dataSource.query(
        "INSERT INTO members (external_id, membership_type, quota_balance) VALUES ('m-2', 'unknown', 5)",
      ),
    ).rejects.toThrow();
    await expect(dataSource.query("UPDATE members SET quota_balance = -1 WHERE external_id = 'm-1'")).rejects.toThrow();
    // Strict mode on MySQL: an out-of-range value is an error, never clipped.
    await expect(
      dataSource.query("UPDATE members SET quota_balance = 3000000000 WHERE external_id = 'm-1'"),
    ).rejects.toThrow();
    const [member] = await dataSource.query("SELECT quota_balance FROM members WHERE external_id = 'm-1'");
    expect(Number(member.quota_balance)).toBe(5);
  });
});
