import request, { type Response } from 'supertest';
import { bearer, loginAs } from '../support/auth';
import { createConfig, ledgerReport, sql, uniqueExternalId } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';
import { uniqueSuffix } from '../support/test-database';
import { JobsClock } from '../../src/jobs/clock';
import { ResetScheduler } from '../../src/jobs/reset-scheduler.service';
import { BULK, seedMembers, waitForOperation } from '../jobs/helpers';

const MEMBERS = '/api/v1/admin/members';
/** The slowest answer a client may get while every write path runs at once. */
const SLOWEST_CALL_MS = 10_000;

interface Timed {
  readonly res: Response;
  readonly ms: number;
  readonly what: string;
}

async function timed(what: string, call: () => Promise<Response>): Promise<Timed> {
  const started = Date.now();
  const res = await call();
  return { res, ms: Date.now() - started, what };
}

function batchOf(type: string, size: number, tag: string) {
  return {
    members: Array.from({ length: size }, (_, i) => ({
      external_id: uniqueExternalId(`${tag}-${i}`),
      membership_type: type,
    })),
  };
}

/** Every member has exactly one initial_grant row, and every balance is the sum of its ledger. */
async function expectExactLedger(t: TestApp): Promise<void> {
  const grants = await sql<{ members: unknown; grants: unknown; wrong: unknown }>(
    t,
    `SELECT COUNT(*) AS members, COALESCE(SUM(g.n), 0) AS grants, COALESCE(SUM(g.n <> 1), 0) AS wrong
       FROM members m
       LEFT JOIN (SELECT member_id, COUNT(*) AS n FROM member_quota_history WHERE reason = 'initial_grant' GROUP BY member_id) g
         ON g.member_id = m.id`,
  );
  expect(Number(grants[0].wrong)).toBe(0);
  expect(Number(grants[0].grants)).toBe(Number(grants[0].members));
  expect((await ledgerReport(t)).mismatches).toEqual([]);
}

function expectNoServerErrorsAndFast(calls: readonly Timed[]): void {
  const bad = calls
    .filter((c) => c.res.status >= 500)
    .map((c) => `${c.what}: ${c.res.status} ${JSON.stringify(c.res.body)}`);
  expect(bad).toEqual([]);
  const slow = calls.filter((c) => c.ms > SLOWEST_CALL_MS).map((c) => `${c.what}: ${c.ms} ms`);
  expect(slow).toEqual([]);
}

/**
 * Several write paths of the service at the same time on MariaDB at its defaults
 * (innodb_autoinc_lock_mode=1, where an INSERT ... SELECT holds the table's AUTO-INC lock for the
 * whole statement), on two instances sharing the database as two pods would. Nothing here may
 * fail with a 5xx, stall on a lock wait, or write a ledger row twice.
 */
describe('write paths running at the same time (two instances, one MariaDB)', () => {
  let first: TestApp;
  let second: TestApp;
  let third: TestApp;
  let admin: string;
  let service: string;

  beforeAll(async () => {
    // One Redis namespace for both, so the API instance's jobs reach the other one's worker.
    const env = { THROTTLE_LIMIT: '0', JOBS_CHUNK_SIZE: '1000', REDIS_PREFIX: `test-${uniqueSuffix()}` };
    first = await startTestApp({ env: { ...env, APP_ROLE: 'api' } });
    second = await startTestApp({ env, database: first.database });
    // Two processes that run jobs: two operations are worked at the same time.
    third = await startTestApp({ env, database: first.database });
    admin = (await loginAs(first, 'admin')).token;
    service = (await loginAs(first, 'service')).token;
  });
  afterAll(async () => {
    await third?.close();
    await second?.close();
    await first?.close();
  });

  const instance = (i: number) => [first, second, third][i % 3];

  it('four parallel batch onboardings of 1,000 members, ten rounds: all created, each with one initial_grant', async () => {
    const { membershipType } = await createConfig(first, { maxQuota: 25 });
    const calls: Timed[] = [];
    for (let round = 0; round < 10; round++) {
      calls.push(
        ...(await Promise.all(
          Array.from({ length: 4 }, (_, i) =>
            timed(`round ${round} batch ${i}`, () =>
              request(instance(i).server)
                .post(`${MEMBERS}/batch`)
                .set(bearer(admin))
                .send(batchOf(membershipType, 1000, `r${round}b${i}`)),
            ),
          ),
        )),
      );
    }
    expectNoServerErrorsAndFast(calls);
    expect(calls.map((c) => c.res.status)).toEqual(calls.map(() => 201));
    const counted = await sql<{ n: unknown }>(first, 'SELECT COUNT(*) AS n FROM members WHERE membership_type = ?', [
      membershipType,
    ]);
    expect(Number(counted[0].n)).toBe(40_000);
    await expectExactLedger(first);
  }, 240_000);

  it.each([1, 2])(
    'bulk adjustments, config propagation, consumes, adjustments and batch onboarding at once (round %i)',
    async () => {
      const bulkType = await seedMembers(first, 6000, { balance: 100, maxQuota: 100 });
      const propagated = await seedMembers(first, 3000, { balance: 40, maxQuota: 40 });
      const configId = (
        await sql<{ id: unknown }>(first, 'SELECT id FROM member_quota_config WHERE membership_type = ?', [
          propagated.membershipType,
        ])
      )[0].id;
      const daily = await createConfig(first, { maxQuota: 60, resetPeriod: 'daily' });
      const resetType = await seedMembers(first, 3000, { membershipType: daily.membershipType, balance: 10 });
      const pick = (ids: readonly string[], i: number) => ids[(i * 7919) % ids.length];
      // The scheduler of one worker believes it is tomorrow: the daily type's reset is due.
      const tomorrow = new Date(Date.now() + 86_400_000);
      const clock = jest.spyOn(third.app.get(JobsClock), 'now').mockImplementation(() => tomorrow);

      const bulk = timed('bulk-adjust', () =>
        request(first.server)
          .post(BULK)
          .set(bearer(admin))
          .send({ membership_type: bulkType.membershipType, delta: 5 }),
      );
      const listed = timed('bulk-adjust by ids', () =>
        request(second.server)
          .post(BULK)
          .set(bearer(admin))
          .send({ member_ids: propagated.ids.slice(0, 2500), new_quota: 77 }),
      );
      const propagation = timed('config propagation', () =>
        request(second.server)
          .patch(`/api/v1/admin/quota/configs/${String(configId)}`)
          .set(bearer(admin))
          .send({ max_quota: 45, apply: 'delta' }),
      );
      const consumes = Array.from({ length: 300 }, (_, i) =>
        timed(`consume ${i}`, () =>
          request(instance(i).server)
            .post(`/api/v1/quota/members/${pick([bulkType.ids, propagated.ids, resetType.ids][i % 3], i)}/consume`)
            .set(bearer(service))
            .send({ amount: 1 }),
        ),
      );
      const adjusts = Array.from({ length: 60 }, (_, i) =>
        timed(`adjust ${i}`, () =>
          request(instance(i).server)
            .post(`/api/v1/admin/quota/members/${pick(bulkType.ids, i + 1)}/adjust`)
            .set(bearer(admin))
            .send({ delta: 2 }),
        ),
      );
      const batches = Array.from({ length: 4 }, (_, i) =>
        timed(`batch ${i}`, () =>
          request(instance(i).server)
            .post(`${MEMBERS}/batch`)
            .set(bearer(admin))
            .send(batchOf(i % 2 ? bulkType.membershipType : propagated.membershipType, 1000, `mixed${i}`)),
        ),
      );
      const resets = third.app.get(ResetScheduler).tick();
      const calls = await Promise.all([bulk, listed, propagation, ...consumes, ...adjusts, ...batches]);
      const resetIds = await resets;
      clock.mockRestore();
      expectNoServerErrorsAndFast(calls);
      expect(calls.filter((c) => c.res.status >= 300 && c.res.status !== 202).map((c) => c.what)).toEqual([]);

      const [bulkRes, listedRes, propagationRes] = calls;
      const operations = [
        bulkRes.res.body.data.operation_id as string,
        listedRes.res.body.data.operation_id as string,
        propagationRes.res.body.meta.operation_id as string,
        ...resetIds,
      ];
      expect(resetIds).toHaveLength(1);
      for (const id of operations) {
        const op = await waitForOperation(first, admin, id, undefined, 60_000);
        expect(op).toMatchObject({ status: 'completed', failed: 0, error: null });
        // A type's operation also takes in members that joined the type ahead of its cursor.
        expect(op.processed).toBeGreaterThanOrEqual(op.total);
        // One history row per member of the operation, never two.
        const rows = await sql<{ members: unknown; rows_written: unknown }>(
          first,
          'SELECT COUNT(DISTINCT member_id) AS members, COUNT(*) AS rows_written FROM member_quota_history WHERE operation_id = ?',
          [id],
        );
        expect(Number(rows[0].rows_written)).toBe(op.processed);
        expect(Number(rows[0].members)).toBe(op.processed);
      }
      await expectExactLedger(first);
    },
    120_000,
  );
});
