import request from 'supertest';
import { LedgerBulkService, type BulkChunk } from '../../src/quota/ledger-bulk.service';
import type { SqlSession } from '../../src/database/sql-session';
import { bearer, loginAs } from '../support/auth';
import { ledgerReport, quotaSnapshot, sql } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';
import { expectProblem } from '../auth/helpers';
import {
  BULK,
  OPERATIONS,
  balances,
  getOperation,
  operationCount,
  rowsPerMember,
  seedMembers,
  waitForOperation,
} from './helpers';

const MESSAGE = 'Bulk adjustment queued for processing';

describe('POST /admin/quota/bulk-adjust and operations', () => {
  let t: TestApp;
  let admin: string;
  let operator: string;

  beforeAll(async () => {
    t = await startTestApp({ env: { JOBS_CHUNK_SIZE: '25', JOBS_CONCURRENCY: '2', THROTTLE_LIMIT: '0' } });
    admin = (await loginAs(t, 'admin')).token;
    operator = (await loginAs(t, 'operator')).token;
  });

  afterAll(async () => {
    await t?.close();
  });

  it('merges duplicate ids, answers 202 with the seed message, and applies each member exactly once', async () => {
    const { ids } = await seedMembers(t, 60, { balance: 40 });
    const sent = [...ids, ...ids.slice(0, 10), Number(ids[5])];
    const res = await request(t.server)
      .post(BULK)
      .set(bearer(admin))
      .send({ member_ids: sent, new_quota: 75, note: 'campaign' });
    expect(res.status).toBe(202);
    expect(res.body).toEqual({
      data: { operation_id: expect.stringMatching(/^\d+$/), status: 'queued', total: 60 },
      message: MESSAGE,
    });
    const op = await waitForOperation(t, admin, res.body.data.operation_id);
    expect(op).toMatchObject({
      status: 'completed',
      kind: 'bulk_adjust',
      total: 60,
      processed: 60,
      changed: 60,
      failed: 0,
      error: null,
      reason: 'bulk_adjustment',
      note: 'campaign',
      change: { new_quota: 75 },
      requested_by: expect.stringMatching(/^\d+$/),
    });
    expect(op.started_at).toEqual(expect.any(String));
    expect(op.finished_at).toEqual(expect.any(String));
    expect(await balances(t, ids)).toEqual(ids.map(() => 75));
    const perMember = await rowsPerMember(t, op.id);
    expect(perMember.size).toBe(60);
    expect([...perMember.values()].every((n) => n === 1)).toBe(true);
    const rows = await sql<{ delta: unknown; balance_after: unknown; reason: string; note: string }>(
      t,
      'SELECT delta, balance_after, reason, note FROM member_quota_history WHERE operation_id = ? LIMIT 1',
      [op.id],
    );
    expect(rows[0]).toMatchObject({ reason: 'bulk_adjustment', note: 'campaign' });
    expect(Number(rows[0].delta)).toBe(35);
    expect(Number(rows[0].balance_after)).toBe(75);
    expect((await ledgerReport(t)).mismatches).toEqual([]);

    // Operators may read operations, but not start one.
    expect((await request(t.server).get(`${OPERATIONS}/${op.id}`).set(bearer(operator))).status).toBe(200);
    const list = await request(t.server).get(`${OPERATIONS}?kind=bulk_adjust&per_page=5`).set(bearer(operator));
    expect(list.status).toBe(200);
    expect(list.body.meta).toMatchObject({ page: 1, per_page: 5, total: expect.any(Number) });
    expect(list.body.data.map((o: { id: string }) => o.id)).toContain(op.id);
    expectProblem(
      await request(t.server).post(BULK).set(bearer(operator)).send({ member_ids: ids, delta: 1 }),
      403,
      'forbidden',
    );
  });

  it('by membership type with a delta: floored at 0, every member of the type, other types untouched', async () => {
    const target = await seedMembers(t, 70, { balance: 30 });
    const other = await seedMembers(t, 5, { balance: 30 });
    await sql(t, 'UPDATE members SET quota_balance = 3 WHERE id = ?', [target.ids[0]]);
    await sql(
      t,
      "INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor) VALUES (?, -27, 3, 'consumption', 'system')",
      [target.ids[0]],
    );
    const res = await request(t.server)
      .post(BULK)
      .set(bearer(admin))
      .send({ membership_type: target.membershipType, delta: -10, reason: 'manual_adjustment' });
    expect(res.status).toBe(202);
    expect(res.body.data.total).toBe(70);
    const op = await waitForOperation(t, admin, res.body.data.operation_id);
    expect(op).toMatchObject({ status: 'completed', processed: 70, changed: 70, change: { delta: -10 } });
    expect(await balances(t, target.ids)).toEqual([0, ...target.ids.slice(1).map(() => 20)]);
    expect(await balances(t, other.ids)).toEqual(other.ids.map(() => 30));
    expect((await ledgerReport(t)).mismatches).toEqual([]);
  });

  it('dry_run answers what would change and changes and queues nothing', async () => {
    const { ids, membershipType } = await seedMembers(t, 12, { balance: 10 });
    await sql(t, 'UPDATE members SET quota_balance = 0 WHERE id = ?', [ids[0]]);
    await sql(
      t,
      "INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor) VALUES (?, -10, 0, 'consumption', 'system')",
      [ids[0]],
    );
    const before = await quotaSnapshot(t);
    const operations = await operationCount(t);
    const byType = await request(t.server)
      .post(BULK)
      .set(bearer(admin))
      .send({ membership_type: membershipType, new_quota: 10, dry_run: true });
    expect(byType.status).toBe(200);
    expect(byType.body).toEqual({ data: { dry_run: true, total: 12, would_change: 1, unchanged: 11 } });
    const byIds = await request(t.server)
      .post(BULK)
      .set(bearer(admin))
      .send({ member_ids: [ids[0], ids[1], ids[1]], delta: -5, dry_run: true });
    expect(byIds.body).toEqual({ data: { dry_run: true, total: 2, would_change: 1, unchanged: 1 } });
    expect(await quotaSnapshot(t)).toEqual(before);
    expect(await operationCount(t)).toBe(operations);
  });

  it('Idempotency-Key: the same key and body give the same operation; another body is refused', async () => {
    const { ids } = await seedMembers(t, 8, { balance: 10 });
    const key = `bulk-${Date.now()}`;
    const send = (body: object) =>
      request(t.server).post(BULK).set(bearer(admin)).set('Idempotency-Key', key).send(body);
    const first = await send({ member_ids: ids, delta: 2 });
    expect(first.status).toBe(202);
    await waitForOperation(t, admin, first.body.data.operation_id);
    const again = await send({ member_ids: ids, delta: 2 });
    expect(again.status).toBe(202);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.body).toEqual(first.body);
    expectProblem(await send({ member_ids: ids, delta: 3 }), 422, 'idempotency_key_mismatch');
    expect(await balances(t, ids)).toEqual(ids.map(() => 12));
    const ops = await sql<{ n: unknown }>(
      t,
      'SELECT COUNT(*) AS n FROM member_quota_history WHERE member_id = ? AND reason = ?',
      [ids[0], 'bulk_adjustment'],
    );
    expect(Number(ops[0].n)).toBe(1);
    // Another caller's same key is another key.
    const otherAdmin = (await loginAs(t, 'admin')).token;
    const other = await request(t.server)
      .post(BULK)
      .set(bearer(otherAdmin))
      .set('Idempotency-Key', key)
      .send({ member_ids: ids, delta: 2 });
    expect(other.status).toBe(202);
    expect(other.body.data.operation_id).not.toBe(first.body.data.operation_id);
    await waitForOperation(t, admin, other.body.data.operation_id);
  });

  it('cancel stops a running operation between chunks; what was done stays done and exact', async () => {
    const { ids, membershipType } = await seedMembers(t, 100, { balance: 10 });
    const bulk = t.app.get(LedgerBulkService);
    const original = bulk.applyChunk.bind(bulk);
    // The cancel arrives while the first chunk runs (committed with it, so the test is not a race).
    const spy = jest.spyOn(bulk, 'applyChunk').mockImplementationOnce(async (s: SqlSession, chunk: BulkChunk) => {
      const result = await original(s, chunk);
      await s.exec('UPDATE quota_operations SET cancel_requested = 1 WHERE id = ?', [chunk.operationId]);
      return result;
    });
    try {
      const res = await request(t.server)
        .post(BULK)
        .set(bearer(admin))
        .send({ membership_type: membershipType, delta: 1 });
      const op = await waitForOperation(t, admin, res.body.data.operation_id);
      // Each of the two runs ends with the chunk it had in hand: one chunk, or two.
      expect(op).toMatchObject({ status: 'cancelled', changed: op.processed, cancel_requested: true });
      expect([25, 50]).toContain(op.processed);
      const after = await balances(t, ids);
      expect(after.filter((b) => b === 11)).toHaveLength(op.processed);
      expect(after.filter((b) => b === 10)).toHaveLength(100 - op.processed);
      expect((await ledgerReport(t)).mismatches).toEqual([]);
      expectProblem(
        await request(t.server).post(`${OPERATIONS}/${op.id}/cancel`).set(bearer(admin)),
        409,
        'operation_finished',
      );
    } finally {
      spy.mockRestore();
    }
  });

  it('a chunk that keeps failing marks the operation failed with why (no driver text) and how far it got', async () => {
    const { ids, membershipType } = await seedMembers(t, 60, { balance: 10 });
    const bulk = t.app.get(LedgerBulkService);
    const original = bulk.applyChunk.bind(bulk);
    let calls = 0;
    const spy = jest.spyOn(bulk, 'applyChunk').mockImplementation(async (s: SqlSession, chunk: BulkChunk) => {
      calls++;
      if (calls === 1) return original(s, chunk);
      // What mysql2 throws when the database cannot be reached: host and port in the message.
      throw Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:3306'), {
        code: 'ECONNREFUSED',
        address: '10.0.0.5',
        port: 3306,
      });
    });
    try {
      const res = await request(t.server)
        .post(BULK)
        .set(bearer(admin))
        .send({ membership_type: membershipType, delta: 1 });
      const op = await waitForOperation(
        t,
        admin,
        res.body.data.operation_id,
        ['completed', 'failed', 'cancelled'],
        25_000,
      );
      expect(op).toMatchObject({ status: 'failed', total: 60, processed: 25, changed: 25, failed: 35 });
      expect(op.error).toContain('25 of 60 processed');
      // The record is served to admins: it says what went wrong, not where the database lives.
      expect(op.error).toContain('the database was unreachable');
      expect(op.error).not.toMatch(/ECONNREFUSED|10\.0\.0\.5|3306/);
      const stored = await sql<{ error: string }>(t, 'SELECT error FROM quota_operations WHERE id = ?', [op.id]);
      expect(stored[0].error).toBe(op.error);
      expect(op.finished_at).toEqual(expect.any(String));
      // Retried: 3 tries per chunk within each of the operation's 3 job attempts; a helper tries
      // its chunk 3 times too before handing it back.
      expect(calls).toBeGreaterThanOrEqual(1 + 3 * 3);
      expect((calls - 1) % 3).toBe(0);
      const after = await balances(t, ids);
      expect(after.filter((b) => b === 11)).toHaveLength(25);
      expect((await ledgerReport(t)).mismatches).toEqual([]);
    } finally {
      spy.mockRestore();
    }
  }, 40_000);

  it('cancel of an unknown operation is 404; operators may not cancel', async () => {
    expectProblem(await request(t.server).post(`${OPERATIONS}/987654321/cancel`).set(bearer(admin)), 404, 'not_found');
    expectProblem(await request(t.server).get(`${OPERATIONS}/abc`).set(bearer(admin)), 404, 'not_found');
    expectProblem(await request(t.server).post(`${OPERATIONS}/1/cancel`).set(bearer(operator)), 403, 'forbidden');
  });

  it('refuses bad input with 422 and changes nothing', async () => {
    const { ids, membershipType } = await seedMembers(t, 3);
    const tooMany = Array.from({ length: 100_001 }, (_, i) => i + 1);
    const cases: [string, unknown, string][] = [
      ['both selectors', { member_ids: ids, membership_type: membershipType, delta: 1 }, 'member_ids'],
      ['no selector', { delta: 1 }, 'member_ids'],
      ['both changes', { member_ids: ids, delta: 1, new_quota: 5 }, 'new_quota'],
      ['no change', { member_ids: ids }, 'new_quota'],
      ['negative new_quota', { member_ids: ids, new_quota: -1 }, 'new_quota'],
      ['new_quota out of range', { member_ids: ids, new_quota: 2 ** 31 }, 'new_quota'],
      ['delta 0', { member_ids: ids, delta: 0 }, 'delta'],
      ['fractional delta', { member_ids: ids, delta: 1.5 }, 'delta'],
      ['unknown field', { member_ids: ids, delta: 1, extra: true }, 'extra'],
      ['over 100,000 ids', { member_ids: tooMany, delta: 1 }, 'member_ids'],
      ['empty id list', { member_ids: [], delta: 1 }, 'member_ids'],
      ['bad id', { member_ids: ['x1'], delta: 1 }, 'member_ids'],
      ['unknown member', { member_ids: [...ids, '987654321'], delta: 1 }, 'member_ids'],
      ['unknown type', { membership_type: 'no-such-type', delta: 1 }, 'membership_type'],
      ['bad type', { membership_type: 'Not A Slug', delta: 1 }, 'membership_type'],
      ['bad reason', { member_ids: ids, delta: 1, reason: 'consumption' }, 'reason'],
      ['dry_run not boolean', { member_ids: ids, delta: 1, dry_run: 'yes' }, 'dry_run'],
    ];
    const before = await quotaSnapshot(t);
    const operations = await operationCount(t);
    for (const [name, body, field] of cases) {
      const res = await request(t.server)
        .post(BULK)
        .set(bearer(admin))
        .send(body as object);
      expect({ name, status: res.status, code: res.body.code }).toEqual({
        name,
        status: 422,
        code: 'validation_failed',
      });
      expect({ name, fields: res.body.errors.map((e: { field: string }) => e.field) }).toEqual({
        name,
        fields: expect.arrayContaining([field]),
      });
    }
    const withQuery = await request(t.server)
      .post(`${BULK}?x=1`)
      .set(bearer(admin))
      .send({ member_ids: ids, delta: 1 });
    expect(withQuery.status).toBe(422);
    expect(await quotaSnapshot(t)).toEqual(before);
    expect(await operationCount(t)).toBe(operations);
  });

  it('takes bodies up to 4 MiB on bulk-adjust only (1 MiB elsewhere), 413 beyond', async () => {
    const { ids } = await seedMembers(t, 2);
    // About 1.9 MB of ids: over the global 1 MiB, within the bulk 4 MiB.
    const big = Array.from({ length: 100_000 }, (_, i) => String(10_000_000_000_000 + i));
    const withinBulk = await request(t.server)
      .post(BULK)
      .set(bearer(admin))
      .send({ member_ids: big, delta: 1, dry_run: true });
    expect(withinBulk.status).toBe(422);
    expect(withinBulk.body.errors[0]).toMatchObject({
      field: 'member_ids',
      message: expect.stringContaining('unknown member ids'),
    });
    const padded = `{"member_ids":[${ids.join(',')}],"delta":1,"note":"x","pad":"${'x'.repeat(5 * 1024 * 1024)}"}`;
    const tooBig = await request(t.server)
      .post(BULK)
      .set(bearer(admin))
      .set('Content-Type', 'application/json')
      .send(padded);
    expectProblem(tooBig, 413, 'payload_too_large');
    const elsewhere = await request(t.server)
      .post('/api/v1/admin/quota/configs')
      .set(bearer(admin))
      .set('Content-Type', 'application/json')
      .send(`{"membership_type":"x","max_quota":1,"description":"${'x'.repeat(2 * 1024 * 1024)}"}`);
    expectProblem(elsewhere, 413, 'payload_too_large');
  });

  it('PATCH config with apply delta|reset propagates as a config_change operation', async () => {
    const { ids } = await seedMembers(t, 30, { balance: 40, maxQuota: 50 });
    const [{ id: configId }] = await sql<{ id: unknown }>(
      t,
      'SELECT c.id FROM member_quota_config c JOIN members m ON m.membership_type = c.membership_type WHERE m.id = ?',
      [ids[0]],
    );
    const delta = await request(t.server)
      .patch(`/api/v1/admin/quota/configs/${String(configId)}`)
      .set(bearer(admin))
      .send({ max_quota: 60, apply: 'delta' });
    expect(delta.status).toBe(200);
    expect(delta.body.data.max_quota).toBe(60);
    const first = await waitForOperation(t, admin, delta.body.meta.operation_id);
    expect(first).toMatchObject({
      kind: 'config_propagation',
      status: 'completed',
      reason: 'config_change',
      total: 30,
      changed: 30,
    });
    expect(await balances(t, ids)).toEqual(ids.map(() => 50));

    const reset = await request(t.server)
      .patch(`/api/v1/admin/quota/configs/${String(configId)}`)
      .set(bearer(admin))
      .send({ max_quota: 45, apply: 'reset' });
    expect(reset.status).toBe(200);
    const second = await waitForOperation(t, admin, reset.body.meta.operation_id);
    expect(second).toMatchObject({ kind: 'config_propagation', status: 'completed', change: { new_quota: 45 } });
    expect(await balances(t, ids)).toEqual(ids.map(() => 45));
    const reasons = await sql<{ reason: string; n: unknown }>(
      t,
      'SELECT reason, COUNT(*) AS n FROM member_quota_history WHERE member_id = ? GROUP BY reason ORDER BY reason',
      [ids[0]],
    );
    expect(reasons.map((r) => [r.reason, Number(r.n)])).toEqual([
      ['config_change', 2],
      ['initial_grant', 1],
    ]);
    expect((await ledgerReport(t)).mismatches).toEqual([]);
  });

  it('consumption during a bulk operation on the same members: no errors reach clients, the ledger stays exact', async () => {
    const { ids, membershipType } = await seedMembers(t, 1000, { balance: 1000, maxQuota: 1000 });
    const service = await loginAs(t, 'service');
    const res = await request(t.server)
      .post(BULK)
      .set(bearer(admin))
      .send({ membership_type: membershipType, delta: 7 });
    expect(res.status).toBe(202);
    const statuses: number[] = [];
    const consumers = Array.from({ length: 4 }, async (_, worker) => {
      for (let i = 0; i < 40; i++) {
        const id = ids[(worker * 53 + i * 7) % ids.length];
        const r = await request(t.server)
          .post(`/api/v1/quota/members/${id}/consume`)
          .set(bearer(service.token))
          .send({ amount: 1 });
        statuses.push(r.status);
      }
    });
    await Promise.all(consumers);
    const op = await waitForOperation(t, admin, res.body.data.operation_id);
    expect(op.status).toBe('completed');
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    const total = await sql<{ s: unknown }>(
      t,
      'SELECT SUM(quota_balance) AS s FROM members WHERE membership_type = ?',
      [membershipType],
    );
    expect(Number(total[0].s)).toBe(1000 * 1007 - 160);
    expect((await ledgerReport(t)).mismatches).toEqual([]);
  });

  it('exposes queue depth and operation durations in /metrics', async () => {
    const res = await request(t.server).get('/metrics');
    expect(res.status).toBe(200);
    expect(res.text).toMatch(/quota_operations_queue_depth\{kind="bulk_adjust",status="queued"\} \d+/);
    expect(res.text).toMatch(/quota_operation_duration_seconds_count\{kind="bulk_adjust",status="completed"\} [1-9]/);
  });

  it('GET operations refuses unknown query parameters', async () => {
    expect((await request(t.server).get(`${OPERATIONS}?bogus=1`).set(bearer(admin))).status).toBe(422);
    expect((await request(t.server).get(`${OPERATIONS}?status=done`).set(bearer(admin))).status).toBe(422);
    const op = await getOperation(
      t,
      admin,
      (await request(t.server).get(OPERATIONS).set(bearer(admin))).body.data[0].id,
    );
    expect(op.id).toEqual(expect.any(String));
  });
});
