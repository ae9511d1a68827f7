import { bearer, loginAs } from '../support/auth';
import { ledgerReport, sql } from '../support/quota-factories';
import { servicesOnOneEmbeddedFile, waitFor, type ServiceProcess } from '../support/service-process';
import { startTestApp } from '../support/test-app';
import { seedMembers } from './helpers';

const MEMBERS = 20_000;

/** The embedded driver: the built service on SQLite, killed in the middle of an operation. */
describe('embedded driver: the service killed in the middle of a 20,000-member operation', () => {
  jest.setTimeout(120_000);
  const files = servicesOnOneEmbeddedFile({ JOBS_CHUNK_SIZE: '250' });
  const start = () => files.start();

  async function operation(service: ServiceProcess, token: string, id: string) {
    const res = await fetch(`${service.baseUrl}/api/v1/admin/quota/operations/${id}`, { headers: bearer(token) });
    return ((await res.json()) as { data: { status: string; processed: number } }).data;
  }

  it('a restarted service resumes it: every member has exactly one row for it, balances right, ledger clean', async () => {
    // Seed with an in-process app, closed before the service opens the same file.
    const seeder = await startTestApp({ database: files.database });
    const admin = (await loginAs(seeder, 'admin')).token;
    const { membershipType } = await seedMembers(seeder, MEMBERS, { balance: 10, maxQuota: 10 });
    await seeder.close();

    const first = await start();
    const res = await fetch(`${first.baseUrl}/api/v1/admin/quota/bulk-adjust`, {
      method: 'POST',
      headers: { ...bearer(admin), 'Content-Type': 'application/json' },
      body: JSON.stringify({ membership_type: membershipType, new_quota: 25 }),
    });
    expect(res.status).toBe(202);
    const { operation_id: id } = ((await res.json()) as { data: { operation_id: string } }).data;
    await waitFor(async () => (await operation(first, admin, id)).processed >= 1_000, 30_000, 10);
    first.child.kill('SIGKILL');
    await first.exited();

    const second = await start();
    await waitFor(async () => (await operation(second, admin, id)).status === 'completed', 60_000, 100);
    expect(await operation(second, admin, id)).toMatchObject({ status: 'completed', processed: MEMBERS });
    second.child.kill('SIGTERM');
    expect(await second.exited()).toBe(0);

    const check = await startTestApp({ database: files.database });
    try {
      const [counts] = await sql<{ rows_for_op: unknown; members: unknown; wrong: unknown }>(
        check,
        `SELECT COUNT(*) AS members, SUM(CASE WHEN n <> 1 THEN 1 ELSE 0 END) AS rows_for_op,
                SUM(CASE WHEN quota_balance <> 25 THEN 1 ELSE 0 END) AS wrong
           FROM (SELECT m.id, m.quota_balance, COUNT(h.id) AS n FROM members m
                   LEFT JOIN member_quota_history h ON h.member_id = m.id AND h.operation_id = ?
                  WHERE m.membership_type = ? GROUP BY m.id, m.quota_balance) x`,
        [id, membershipType],
      );
      expect({
        members: Number(counts.members),
        notOnce: Number(counts.rows_for_op),
        wrong: Number(counts.wrong),
      }).toEqual({
        members: MEMBERS,
        notOnce: 0,
        wrong: 0,
      });
      expect((await ledgerReport(check)).mismatches).toEqual([]);
    } finally {
      await check.close();
    }
  });
});
