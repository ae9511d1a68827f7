import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { QuotaDatabase } from '../../src/database/database';
import { bearer, loginAs } from '../support/auth';
import { balanceOf, createMember, historyOf, ledgerReport } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';
import { metricValue } from '../auth/helpers';

/**
 * Exactness under concurrency, on MariaDB, with two application instances sharing one database
 * (as two pods would): nothing here can pass by luck of a single process serialising requests.
 */
describe('quota under concurrency (two instances, one MariaDB)', () => {
  let first: TestApp;
  let second: TestApp;
  let service: string;
  let admin: string;

  beforeAll(async () => {
    const env = { THROTTLE_LIMIT: '0', DB_POOL_SIZE: '20' };
    first = await startTestApp({ env });
    second = await startTestApp({ env, database: first.database });
    service = (await loginAs(first, 'service')).token;
    admin = (await loginAs(first, 'admin')).token;
  });
  afterAll(async () => {
    await second?.close();
    await first?.close();
  });

  const instance = (i: number) => (i % 2 === 0 ? first : second);

  it('never oversells: balance N, many more than N parallel consumes → exactly N succeed', async () => {
    const n = 40;
    const member = await createMember(first, { maxQuota: n });
    const attempts = 240;
    const responses = await Promise.all(
      Array.from({ length: attempts }, (_, i) =>
        request(instance(i).server)
          .post(`/api/v1/quota/members/${member.id}/consume`)
          .set(bearer(service))
          .send({ amount: 1 }),
      ),
    );
    const statuses = responses.map((r) => r.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(n);
    expect(statuses.filter((s) => s === 409)).toHaveLength(attempts - n);
    for (const r of responses.filter((r) => r.status === 409)) {
      expect(r.body).toMatchObject({ code: 'insufficient_quota', balance: 0 });
    }
    // Every successful answer reports a distinct balance: n-1 down to 0.
    const balances = responses.filter((r) => r.status === 200).map((r) => r.body.data.balance as number);
    expect(balances.sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(await balanceOf(first, member.id)).toBe(0);
    const consumptions = (await historyOf(first, member.id)).filter((h) => h.reason === 'consumption');
    expect(consumptions).toHaveLength(n);
    expect(consumptions.map((h) => h.balance_after).sort((a, b) => a - b)).toEqual(balances);
    expect(await ledgerReport(first, member.id)).toEqual({ checked: 1, mismatches: [], held_mismatches: [] });
  });

  it('never oversells with mixed amounts either', async () => {
    const start = 100;
    const member = await createMember(first, { maxQuota: start });
    const amounts = Array.from({ length: 120 }, (_, i) => 1 + (i % 4));
    const responses = await Promise.all(
      amounts.map((amount, i) =>
        request(instance(i).server)
          .post(`/api/v1/quota/members/${member.id}/consume`)
          .set(bearer(service))
          .send({ amount }),
      ),
    );
    const consumed = responses.reduce((sum, r, i) => (r.status === 200 ? sum + amounts[i] : sum), 0);
    expect(responses.every((r) => r.status === 200 || r.status === 409)).toBe(true);
    expect(consumed).toBeLessThanOrEqual(start);
    expect(await balanceOf(first, member.id)).toBe(start - consumed);
    expect(await ledgerReport(first, member.id)).toEqual({ checked: 1, mismatches: [], held_mismatches: [] });
  });

  it('loses no update: adjustments interleaved with consumes add up exactly', async () => {
    const start = 1000;
    const member = await createMember(first, { maxQuota: start });
    const ops: { kind: 'consume' | 'adjust'; value: number }[] = [];
    for (let i = 0; i < 150; i++) ops.push({ kind: 'consume', value: 1 + (i % 3) });
    for (let i = 0; i < 60; i++) ops.push({ kind: 'adjust', value: i % 3 === 0 ? -2 : 5 });
    // Interleave deterministically.
    ops.sort(
      (a, b) =>
        ((a.value * 7 + (a.kind === 'adjust' ? 3 : 0)) % 11) - ((b.value * 7 + (b.kind === 'adjust' ? 3 : 0)) % 11),
    );
    const responses = await Promise.all(
      ops.map((op, i) =>
        op.kind === 'consume'
          ? request(instance(i).server)
              .post(`/api/v1/quota/members/${member.id}/consume`)
              .set(bearer(service))
              .send({ amount: op.value })
          : request(instance(i).server)
              .post(`/api/v1/admin/quota/members/${member.id}/adjust`)
              .set(bearer(admin))
              .send({ delta: op.value }),
      ),
    );
    expect(responses.map((r) => r.status).filter((s) => s !== 200)).toEqual([]);
    const consumed = ops.filter((o) => o.kind === 'consume').reduce((s, o) => s + o.value, 0);
    const adjusted = ops.filter((o) => o.kind === 'adjust').reduce((s, o) => s + o.value, 0);
    expect(await balanceOf(first, member.id)).toBe(start + adjusted - consumed);
    const history = await historyOf(first, member.id);
    expect(history).toHaveLength(1 + ops.length);
    expect(await ledgerReport(first, member.id)).toEqual({ checked: 1, mismatches: [], held_mismatches: [] });
    // Each row's balance_after is its predecessor's plus its delta: a total order of the changes.
    for (let i = 1; i < history.length; i++) {
      expect(history[i].balance_after).toBe(history[i - 1].balance_after + history[i].delta);
    }
  });

  it('20 parallel requests with one key, on both instances, debit once', async () => {
    const member = await createMember(first, { maxQuota: 100 });
    const key = randomUUID();
    const responses = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        request(instance(i).server)
          .post(`/api/v1/quota/members/${member.id}/consume`)
          .set(bearer(service))
          .set('Idempotency-Key', key)
          .send({ amount: 9 }),
      ),
    );
    const firsts = responses.filter((r) => r.status === 200 && !r.headers['idempotent-replayed']);
    const replays = responses.filter((r) => r.status === 200 && r.headers['idempotent-replayed'] === 'true');
    const inProgress = responses.filter((r) => r.status === 409 && r.body.code === 'idempotency_key_in_use');
    expect(firsts).toHaveLength(1);
    expect(replays.length + inProgress.length).toBe(19);
    for (const r of replays) expect(r.body).toEqual(firsts[0].body);
    expect(await balanceOf(first, member.id)).toBe(91);
    expect((await historyOf(first, member.id)).filter((h) => h.idempotency_key === key)).toHaveLength(1);
  });

  it('a one-round-trip batch that fails part-way commits nothing, and its connection stays usable', async () => {
    const member = await createMember(first, { maxQuota: 10 });
    const db = first.app.get(QuotaDatabase);
    const debit = { sql: 'UPDATE members SET quota_balance = quota_balance - 1 WHERE id = ?', params: [member.id] };
    // A history row for a member that does not exist fails on its foreign key, after the debit ran.
    const orphan = {
      sql: "INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor) VALUES (?, -1, 0, 'consumption', 'test')",
      params: ['999999999'],
    };
    for (let i = 0; i < 25; i++) {
      await expect(db.batch([debit, orphan])).rejects.toMatchObject({ errno: 1452 });
    }
    expect(await balanceOf(first, member.id)).toBe(10);
    // Every pooled connection went back rolled back: batches that succeed run on any of them.
    const credit = { sql: 'UPDATE members SET quota_balance = quota_balance + 1 WHERE id = ?', params: [member.id] };
    const results = await Promise.all(Array.from({ length: 20 }, () => db.batch([debit, credit])));
    expect(results.map((r) => r.map((x) => x.affected))).toEqual(Array.from({ length: 20 }, () => [1, 1]));
    expect(await balanceOf(first, member.id)).toBe(10);
    expect((await historyOf(first, member.id)).map((h) => h.reason)).toEqual(['initial_grant']);
  });

  it('retries a transaction that lost a deadlock, and both units of work complete', async () => {
    const a = await createMember(first);
    const b = await createMember(first);
    const db = first.app.get(QuotaDatabase);
    const retriesBefore = await metricValue(first, 'quota_transaction_retries_total', { kind: 'deadlock' });
    let arrived = 0;
    let release!: () => void;
    const bothLocked = new Promise<void>((resolve) => (release = resolve));
    const lockInOrder = (x: string, y: string) =>
      db.transaction(async (s) => {
        await s.rows('SELECT id FROM members WHERE id = ? FOR UPDATE', [x]);
        // Only the first run of each waits for the other: the retried run goes straight through.
        if (arrived < 2 && ++arrived === 2) release();
        await bothLocked;
        await s.rows('SELECT id FROM members WHERE id = ? FOR UPDATE', [y]);
        return 'done';
      });
    await expect(Promise.all([lockInOrder(a.id, b.id), lockInOrder(b.id, a.id)])).resolves.toEqual(['done', 'done']);
    expect(await metricValue(first, 'quota_transaction_retries_total', { kind: 'deadlock' })).toBe(retriesBefore + 1);
  });
});
