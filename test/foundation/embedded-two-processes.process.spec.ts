import { bearer, loginAs } from '../support/auth';
import { balanceOf, createMember, historyOf, ledgerReport } from '../support/quota-factories';
import { servicesOnOneEmbeddedFile, type ServiceProcess } from '../support/service-process';
import { startTestApp } from '../support/test-app';

/**
 * Two service processes on one embedded database file, writing at the same time: each takes the
 * file's write lock as its transaction begins and waits for the other (busy timeout, then bounded
 * retries), so no change is lost or doubled and no request fails.
 */
describe('embedded driver: two processes on one database file', () => {
  jest.setTimeout(120_000);
  const files = servicesOnOneEmbeddedFile();
  const start = () => files.start();

  it('consumes and admin adjustments sent to both at once all land exactly once', async () => {
    const seeder = await startTestApp({ database: files.database });
    const service = (await loginAs(seeder, 'service')).token;
    const admin = (await loginAs(seeder, 'admin')).token;
    const n = 60;
    const member = await createMember(seeder, { maxQuota: n });
    const adjusted = await createMember(seeder, { maxQuota: 10 });
    await seeder.close();

    const [first, second] = await Promise.all([start(), start()]);
    const post = (target: ServiceProcess, path: string, token: string, body: unknown) =>
      fetch(`${target.baseUrl}/api/v1${path}`, {
        method: 'POST',
        headers: { ...bearer(token), 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
    const attempts = 120;
    const consumes = Array.from({ length: attempts }, (_, i) =>
      post(i % 2 === 0 ? first : second, `/quota/members/${member.id}/consume`, service, { amount: 1 }),
    );
    // Setting a balance reads the row, then writes it: a transaction that would go stale if the
    // other process committed between its read and its write.
    const adjusts = Array.from({ length: 40 }, (_, i) =>
      post(i % 2 === 0 ? second : first, `/admin/quota/members/${adjusted.id}/adjust`, admin, { new_quota: 100 + i }),
    );
    const [responses, adjustments] = await Promise.all([Promise.all(consumes), Promise.all(adjusts)]);
    expect(adjustments.map((r) => r.status)).toEqual(adjusts.map(() => 200));
    const statuses = responses.map((r) => r.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(n);
    expect(statuses.filter((s) => s === 409)).toHaveLength(attempts - n);

    for (const s of [first, second]) {
      s.child.kill('SIGTERM');
      await s.exited();
    }
    const checker = await startTestApp({ database: files.database });
    try {
      expect(await balanceOf(checker, member.id)).toBe(0);
      expect((await historyOf(checker, member.id)).filter((h) => h.reason === 'consumption')).toHaveLength(n);
      expect(await ledgerReport(checker, member.id)).toEqual({ checked: 1, mismatches: [], held_mismatches: [] });
      expect((await historyOf(checker, adjusted.id)).filter((h) => h.reason === 'manual_adjustment')).toHaveLength(40);
      expect(await ledgerReport(checker, adjusted.id)).toEqual({ checked: 1, mismatches: [], held_mismatches: [] });
    } finally {
      await checker.close();
    }
  });
});
