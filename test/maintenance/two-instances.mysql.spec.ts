import request from 'supertest';
import { bearer, loginAs } from '../support/auth';
import { createMember, sql } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { MAINTENANCE, setReadOnly } from './helpers';

/** Two instances on one MariaDB database, as behind a load balancer: one switch for both. */
describe('write freeze across instances', () => {
  let database: TestDatabase;
  let first: TestApp;
  let second: TestApp;
  let admin: string;
  let service: string;
  let memberId: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    const env = { THROTTLE_LIMIT: '0' };
    first = await startTestApp({ database, env });
    second = await startTestApp({ database, env });
    admin = (await loginAs(first, 'admin')).token;
    service = (await loginAs(first, 'service')).token;
    memberId = (await createMember(first, { maxQuota: 1000 })).id;
  });

  afterAll(async () => {
    await second?.close();
    await first?.close();
    await database?.drop();
  });

  const consumeOnSecond = () =>
    request(second.server).post(`/api/v1/quota/members/${memberId}/consume`).set(bearer(service)).send({ amount: 1 });
  const balance = async () =>
    Number(
      (await sql<{ quota_balance: unknown }>(first, 'SELECT quota_balance FROM members WHERE id = ?', [memberId]))[0]
        .quota_balance,
    );

  /** Sends consumes to the second instance until one gets `status`; returns how long that took. */
  async function untilSecondAnswers(status: number, startedAt: number): Promise<number> {
    for (;;) {
      const res = await consumeOnSecond();
      if (res.status === status) return Date.now() - startedAt;
      expect(Date.now() - startedAt).toBeLessThan(5000);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it('a PUT on one instance makes the other refuse writes within 2 s, and accept them again within 2 s', async () => {
    expect((await consumeOnSecond()).status).toBe(200);

    const frozenAt = Date.now();
    await setReadOnly(first, admin, true, 'two instances');
    const refusedAfter = await untilSecondAnswers(503, frozenAt);
    expect(refusedAfter).toBeLessThan(2000);
    const refused = await consumeOnSecond();
    expect({ status: refused.status, code: refused.body.code, retry: refused.headers['retry-after'] }).toEqual({
      status: 503,
      code: 'read_only',
      retry: '60',
    });
    const frozenBalance = await balance();
    await new Promise((r) => setTimeout(r, 300));
    expect((await consumeOnSecond()).status).toBe(503);
    expect(await balance()).toBe(frozenBalance);
    // The other instance shows the state its poll read.
    const seen = await request(second.server).get(MAINTENANCE).set(bearer(admin));
    expect(seen.body.data).toMatchObject({ read_only: true, reason: 'two instances' });
    expect((await request(second.server).get('/api/v1/health')).body.quota_system).toBe('degraded');

    const thawedAt = Date.now();
    await setReadOnly(first, admin, false);
    const acceptedAfter = await untilSecondAnswers(200, thawedAt);
    expect(acceptedAfter).toBeLessThan(2000);
    expect(await balance()).toBe(frozenBalance - 1);
  });
});
