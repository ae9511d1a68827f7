import { randomBytes } from 'node:crypto';
import { UsersService } from '../../src/auth/users.service';
import { QuotaDatabase } from '../../src/database/database';
import { balanceOf, createMember, sql } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';

/**
 * Every write goes through one writer on the embedded database, whatever module it comes from:
 * a user created while a quota transaction is open on the shared connection waits for it, and is
 * not rolled back with it (test/foundation/embedded-two-processes.process.spec.ts has two
 * processes on one file).
 */
describe('one writer per process', () => {
  let first: TestApp;

  beforeAll(async () => {
    first = await startTestApp();
  });
  afterAll(async () => {
    await first?.close();
  });

  it('a user written while a quota transaction is open is not rolled back with that transaction', async () => {
    const member = await createMember(first, { maxQuota: 10 });
    const db = first.app.get(QuotaDatabase);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let entered!: () => void;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    const failing = db.transaction(
      async (s) => {
        await s.exec('UPDATE members SET quota_balance = quota_balance - 1 WHERE id = ?', [member.id]);
        entered();
        await held;
        throw new Error('the quota transaction fails');
      },
      { retries: 0 },
    );
    await inside;
    const email = `writer-${randomBytes(4).toString('hex')}@example.com`;
    const creating = first.app
      .get(UsersService)
      .create('system', { email, password: 'a-long-random-password-1', role: 'service', memberId: null });
    // Long enough for the password hash and the user's insert to be tried while the transaction is open.
    await new Promise((resolve) => setTimeout(resolve, 700));
    release();
    await expect(failing).rejects.toThrow('the quota transaction fails');
    const user = await creating;
    expect(await sql(first, 'SELECT id FROM users WHERE email = ?', [email])).toEqual([
      { id: expect.anything() as unknown },
    ]);
    expect(String(user.id)).toMatch(/^\d+$/);
    // The failed transaction's change is gone, the audit row of the user is there.
    expect(await balanceOf(first, member.id)).toBe(10);
    const audit = await sql<{ n: number }>(
      first,
      "SELECT COUNT(*) AS n FROM admin_audit_log WHERE action = 'user.create' AND entity_id = ?",
      [String(user.id)],
    );
    expect(Number(audit[0].n)).toBe(1);
  });
});
