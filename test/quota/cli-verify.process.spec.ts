import { createMember, sql } from '../support/quota-factories';
import { runCli } from '../support/service-process';
import { baseTestEnv, startTestApp, type TestApp } from '../support/test-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';

describe('npm run cli -- quota:verify', () => {
  let database: TestDatabase;
  let t: TestApp;

  beforeAll(async () => {
    database = await createTestDatabase();
    t = await startTestApp({ database });
  });
  afterAll(async () => {
    await t.close();
    await database.drop();
  });

  it('exits 0 on a clean ledger and 1, naming the member, when a balance differs from its history', async () => {
    const clean = await createMember(t, { initialQuota: 7 });
    const broken = await createMember(t, { initialQuota: 9 });

    const ok = await runCli(baseTestEnv(database), ['quota:verify']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('ok: 2 member(s) checked');

    // A write that bypasses the ledger, as a manual SQL fix would.
    await sql(t, 'UPDATE members SET quota_balance = 3 WHERE id = ?', [broken.id]);

    const failed = await runCli(baseTestEnv(database), ['quota:verify']);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toContain(`MISMATCH member ${broken.id}: balance 3, ledger sum 9`);
    expect(failed.stdout).not.toContain(`member ${clean.id}:`);

    const one = await runCli(baseTestEnv(database), ['quota:verify', '--member-id', clean.id]);
    expect(one.code).toBe(0);
    expect(one.stdout).toContain('ok: 1 member(s) checked');

    const usage = await runCli(baseTestEnv(database), ['quota:verify', '--member-id', 'abc']);
    expect(usage.code).toBe(2);
  });
});
