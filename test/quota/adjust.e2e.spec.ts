import request from 'supertest';
import { bearer, loginAs } from '../support/auth';
import { balanceOf, createMember, historyOf, ledgerReport, quotaSnapshot, sql } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';
import { expectProblem } from '../auth/helpers';

const adjustOf = (id: string) => `/api/v1/admin/quota/members/${id}/adjust`;

describe('adjustments', () => {
  let t: TestApp;
  let admin: string;
  let operator: { token: string; userId: string };

  beforeAll(async () => {
    t = await startTestApp({ env: { THROTTLE_LIMIT: '0' } });
    admin = (await loginAs(t, 'admin')).token;
    operator = await loginAs(t, 'operator');
  });
  afterAll(async () => {
    await t?.close();
  });

  it('applies a delta: 200 with the new balance, a manual_adjustment row and an audit entry', async () => {
    const member = await createMember(t, { maxQuota: 50 });
    const res = await request(t.server)
      .post(adjustOf(member.id))
      .set(bearer(operator.token))
      .send({ delta: 25, note: 'goodwill' });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      data: {
        member_id: member.id,
        delta: 25,
        balance: 75,
        reason: 'manual_adjustment',
        history_id: expect.stringMatching(/^\d+$/),
      },
    });
    expect(res.headers['x-quota-remaining']).toBe('75');
    const history = await historyOf(t, member.id);
    expect(history[1]).toEqual({
      id: res.body.data.history_id,
      delta: 25,
      balance_after: 75,
      reason: 'manual_adjustment',
      actor: operator.userId,
      idempotency_key: null,
      note: 'goodwill',
    });
    const audit = await sql<{ action: string; actor_user_id: unknown; before_json: string; after_json: string }>(
      t,
      "SELECT action, actor_user_id, before_json, after_json FROM admin_audit_log WHERE entity_type = 'member' AND entity_id = ? AND action = 'member.adjust'",
      [member.id],
    );
    expect(audit).toHaveLength(1);
    expect(String(audit[0].actor_user_id)).toBe(operator.userId);
    expect(JSON.parse(audit[0].before_json)).toEqual({ quota_balance: 50 });
    expect(JSON.parse(audit[0].after_json)).toEqual({
      quota_balance: 75,
      delta: 25,
      reason: 'manual_adjustment',
      note: 'goodwill',
      history_id: res.body.data.history_id,
    });
  });

  it('sets new_quota exactly, recording the difference as the delta (0 included), with an optional reason', async () => {
    const member = await createMember(t, { maxQuota: 50 });
    const down = await request(t.server)
      .post(adjustOf(member.id))
      .set(bearer(admin))
      .send({ new_quota: 12, reason: 'refund' });
    expect(down.body.data).toMatchObject({ delta: -38, balance: 12, reason: 'refund' });
    const same = await request(t.server).post(adjustOf(member.id)).set(bearer(admin)).send({ new_quota: 12 });
    expect(same.body.data).toMatchObject({ delta: 0, balance: 12, reason: 'manual_adjustment' });
    const zero = await request(t.server).post(adjustOf(member.id)).set(bearer(admin)).send({ new_quota: 0 });
    expect(zero.body.data).toMatchObject({ delta: -12, balance: 0 });
    expect((await historyOf(t, member.id)).map((h) => [h.reason, h.delta, h.balance_after])).toEqual([
      ['initial_grant', 50, 50],
      ['refund', -38, 12],
      ['manual_adjustment', 0, 12],
      ['manual_adjustment', -12, 0],
    ]);
    expect(await ledgerReport(t, member.id)).toEqual({ checked: 1, mismatches: [], held_mismatches: [] });
  });

  it('adjusts inactive members too (an operator correcting the books)', async () => {
    const member = await createMember(t);
    await request(t.server).patch(`/api/v1/admin/members/${member.id}`).set(bearer(admin)).send({ is_active: false });
    const res = await request(t.server).post(adjustOf(member.id)).set(bearer(admin)).send({ delta: -10 });
    expect(res.status).toBe(200);
    expect(await balanceOf(t, member.id)).toBe(40);
  });

  it('refuses a result below 0 or above 2^31-1 with 422 and changes nothing', async () => {
    const member = await createMember(t, { maxQuota: 50 });
    const before = await quotaSnapshot(t);
    const negative = await request(t.server).post(adjustOf(member.id)).set(bearer(admin)).send({ delta: -51 });
    expectProblem(negative, 422, 'negative_balance');
    expect(negative.body.balance).toBe(50);
    expectProblem(
      await request(t.server).post(adjustOf(member.id)).set(bearer(admin)).send({ delta: 2_147_483_647 }),
      422,
      'balance_out_of_range',
    );
    expect(await quotaSnapshot(t)).toEqual(before);
  });

  it('refuses both or neither of delta and new_quota, delta 0, unknown members and bad values (422/404), changing nothing', async () => {
    const member = await createMember(t);
    const before = await quotaSnapshot(t);
    const bad: [object, string][] = [
      [{}, 'delta'],
      [{ delta: 1, new_quota: 5 }, 'delta'],
      [{ note: 'only a note' }, 'delta'],
      [{ delta: 0 }, 'delta'],
      [{ new_quota: -1 }, 'new_quota'],
      [{ delta: 1.5 }, 'delta'],
      [{ delta: '5' }, 'delta'],
      [{ delta: null }, 'delta'],
      [{ new_quota: 2_147_483_648 }, 'new_quota'],
      [{ delta: -2_147_483_648 }, 'delta'],
      [{ delta: 1, reason: 'periodic_reset' }, 'reason'],
      [{ delta: 1, note: 'x'.repeat(501) }, 'note'],
      [{ delta: 1, actor: 'someone-else' }, 'actor'],
    ];
    for (const [body, field] of bad) {
      const res = await request(t.server).post(adjustOf(member.id)).set(bearer(admin)).send(body);
      expectProblem(res, 422, 'validation_failed');
      expect({ body, fields: res.body.errors.map((e: { field: string }) => e.field) }).toEqual({
        body,
        fields: expect.arrayContaining([field]),
      });
    }
    expectProblem(
      await request(t.server).post(adjustOf('987654321')).set(bearer(admin)).send({ delta: 1 }),
      404,
      'not_found',
    );
    expectProblem(
      await request(t.server).post(adjustOf('987654321')).set(bearer(admin)).send({ new_quota: 1 }),
      404,
      'not_found',
    );
    expect(await quotaSnapshot(t)).toEqual(before);
  });
});
