import { DataSource } from 'typeorm';
import { QuotaDatabase } from '../../src/database/database';
import { createMember, balanceOf } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';

/**
 * Only the consume/refund batch's own pool sends several statements in one query; the pool every
 * other statement uses refuses them, so a value ever spliced into SQL cannot stack a statement.
 */
describe('multiple statements per query (MySQL)', () => {
  let app: TestApp;

  beforeAll(async () => {
    app = await startTestApp({ env: { DB_BATCH_POOL_SIZE: '2' } });
  });
  afterAll(async () => {
    await app?.close();
  });

  it("refuses a stacked statement on TypeORM's pool and in the session API", async () => {
    const dataSource = app.app.get(DataSource);
    await expect(dataSource.query('SELECT 1 AS a; SELECT 2 AS b')).rejects.toMatchObject({
      driverError: expect.objectContaining({ code: 'ER_PARSE_ERROR' }),
    });
    const db = app.app.get(QuotaDatabase);
    await expect(db.read((s) => s.rows('SELECT 1 AS a; SELECT 2 AS b'))).rejects.toMatchObject({
      code: 'ER_PARSE_ERROR',
    });
    await expect(db.transaction((s) => s.exec('SELECT 1 AS a; SELECT 2 AS b'))).rejects.toMatchObject({
      code: 'ER_PARSE_ERROR',
    });
  });

  it('runs a whole transaction as one batch on its own pool', async () => {
    const member = await createMember(app, { maxQuota: 100 });
    const db = app.app.get(QuotaDatabase);
    const results = await db.batch([
      { sql: 'UPDATE members SET quota_balance = quota_balance - ? WHERE id = ?', params: [7, member.id] },
      { sql: 'UPDATE members SET quota_balance = quota_balance - ? WHERE id = ?', params: [3, member.id] },
    ]);
    expect(results.map((r) => r.affected)).toEqual([1, 1]);
    expect(await balanceOf(app, member.id)).toBe(90);
  });
});
