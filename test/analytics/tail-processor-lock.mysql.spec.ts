import { createConnection } from 'mysql2/promise';
import { TailProcessor } from '../../src/analytics/tail-processor.service';
import { createMember } from '../support/quota-factories';
import { mysqlServer } from '../support/test-database';
import { startTestApp, type TestApp } from '../support/test-app';
import { ANALYTICS_TEST_ENV } from './helpers';

describe('one tail processor at a time', () => {
  let a: TestApp;
  let b: TestApp;

  beforeAll(async () => {
    a = await startTestApp({ env: ANALYTICS_TEST_ENV });
    b = await startTestApp({ env: ANALYTICS_TEST_ENV, database: a.database });
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  it('skips its turn while another instance holds the watermark row, then processes', async () => {
    await createMember(a, { maxQuota: 5 });
    await new Promise((resolve) => setTimeout(resolve, 10));
    const other = await createConnection({ ...mysqlServer, database: a.database.env.DB_DATABASE });
    try {
      await other.query('START TRANSACTION');
      await other.query("SELECT last_history_id FROM quota_analytics_state WHERE name = 'history_tail' FOR UPDATE");
      const started = Date.now();
      const skipped = await b.app.get(TailProcessor).runOnce();
      expect(skipped).toEqual(expect.objectContaining({ ran: false, processed: 0 }));
      expect(Date.now() - started).toBeLessThan(1000);
    } finally {
      await other.query('ROLLBACK');
      await other.end();
    }
    const run = await b.app.get(TailProcessor).runOnce();
    expect(run.ran).toBe(true);
    expect(run.processed).toBeGreaterThan(0);
    // The other instance sees the same watermark: nothing left for it.
    expect(await a.app.get(TailProcessor).runOnce()).toEqual(expect.objectContaining({ ran: true, processed: 0 }));
  });
});
