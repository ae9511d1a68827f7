import request from 'supertest';
import { DataSource } from 'typeorm';
import { bearer, loginAs } from '../support/auth';
import {
  balanceOf,
  createConfig,
  createMember,
  historyOf,
  ledgerReport,
  quotaSnapshot,
  sql,
  uniqueExternalId,
} from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';
import { expectProblem, ISO_MS } from '../auth/helpers';

const MEMBERS = '/api/v1/admin/members';

describe('members', () => {
  let t: TestApp;
  let admin: string;
  let operator: string;
  let operatorId: string;

  beforeAll(async () => {
    t = await startTestApp({ env: { THROTTLE_LIMIT: '0' } });
    admin = (await loginAs(t, 'admin')).token;
    const op = await loginAs(t, 'operator');
    operator = op.token;
    operatorId = op.userId;
  });
  afterAll(async () => {
    await t?.close();
  });

  it("creates a member with its type's max_quota and one initial_grant row", async () => {
    const config = await createConfig(t, { maxQuota: 50 });
    const externalId = uniqueExternalId();
    const res = await request(t.server)
      .post(MEMBERS)
      .set(bearer(operator))
      .send({ external_id: externalId, membership_type: config.membershipType });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      data: {
        id: expect.stringMatching(/^\d+$/),
        external_id: externalId,
        membership_type: config.membershipType,
        quota_balance: 50,
        is_active: true,
        period_started_at: expect.stringMatching(ISO_MS),
        created_at: expect.stringMatching(ISO_MS),
        updated_at: expect.stringMatching(ISO_MS),
      },
    });
    const id = res.body.data.id as string;
    expect(await balanceOf(t, id)).toBe(50);
    expect(await historyOf(t, id)).toEqual([
      {
        id: expect.any(String),
        delta: 50,
        balance_after: 50,
        reason: 'initial_grant',
        actor: operatorId,
        idempotency_key: null,
        note: null,
      },
    ]);
    const audit = await sql<{ action: string; after_json: string }>(
      t,
      "SELECT action, after_json FROM admin_audit_log WHERE entity_type = 'member' AND entity_id = ?",
      [id],
    );
    expect(audit.map((a) => a.action)).toEqual(['member.create']);
    expect(JSON.parse(audit[0].after_json)).toMatchObject({ external_id: externalId, quota_balance: 50 });
  });

  it('uses initial_quota when given, including 0', async () => {
    const config = await createConfig(t, { maxQuota: 50 });
    for (const initial of [7, 0]) {
      const res = await request(t.server)
        .post(MEMBERS)
        .set(bearer(admin))
        .send({ external_id: uniqueExternalId(), membership_type: config.membershipType, initial_quota: initial });
      expect(res.status).toBe(201);
      expect(res.body.data.quota_balance).toBe(initial);
      expect((await historyOf(t, res.body.data.id)).map((h) => [h.reason, h.delta, h.balance_after])).toEqual([
        ['initial_grant', initial, initial],
      ]);
    }
  });

  it('refuses an existing external_id (409), an unknown type (422) and an inactive type (409), changing nothing', async () => {
    const member = await createMember(t);
    const inactive = await createConfig(t, { isActive: false });
    const before = await quotaSnapshot(t);

    const dup = await request(t.server)
      .post(MEMBERS)
      .set(bearer(admin))
      .send({ external_id: member.externalId, membership_type: member.membershipType });
    expectProblem(dup, 409, 'member_exists');
    expect(dup.body.external_ids).toEqual([member.externalId]);

    const unknown = await request(t.server)
      .post(MEMBERS)
      .set(bearer(admin))
      .send({ external_id: uniqueExternalId(), membership_type: 'no-such-type' });
    expectProblem(unknown, 422, 'validation_failed');
    expect(unknown.body.errors).toEqual([
      { field: 'membership_type', message: expect.stringContaining('no-such-type') },
    ]);

    const off = await request(t.server)
      .post(MEMBERS)
      .set(bearer(admin))
      .send({ external_id: uniqueExternalId(), membership_type: inactive.membershipType });
    expectProblem(off, 409, 'config_inactive');

    expect(await quotaSnapshot(t)).toEqual(before);
  });

  it('lists members with page, per_page and total, filtered by membership_type', async () => {
    const config = await createConfig(t);
    const created = [];
    for (let i = 0; i < 5; i++) created.push(await createMember(t, { membershipType: config.membershipType }));
    const page1 = await request(t.server)
      .get(`${MEMBERS}?membership_type=${config.membershipType}&page=1&per_page=2`)
      .set(bearer(operator))
      .expect(200);
    expect(page1.body.meta).toEqual({ page: 1, per_page: 2, total: 5 });
    expect(page1.body.data.map((m: { id: string }) => m.id)).toEqual([created[0].id, created[1].id]);
    const page3 = await request(t.server)
      .get(`${MEMBERS}?membership_type=${config.membershipType}&page=3&per_page=2`)
      .set(bearer(operator))
      .expect(200);
    expect(page3.body.data.map((m: { id: string }) => m.id)).toEqual([created[4].id]);
    const beyond = await request(t.server)
      .get(`${MEMBERS}?membership_type=${config.membershipType}&page=9&per_page=2`)
      .set(bearer(operator))
      .expect(200);
    expect(beyond.body).toEqual({ data: [], meta: { page: 9, per_page: 2, total: 5 } });

    const all = await request(t.server).get(MEMBERS).set(bearer(admin)).expect(200);
    expect(all.body.meta.page).toBe(1);
    expect(all.body.meta.per_page).toBe(20);
    expect(all.body.meta.total).toBeGreaterThanOrEqual(5);
  });

  it('gets one member; unknown ids are 404', async () => {
    const member = await createMember(t);
    const res = await request(t.server).get(`${MEMBERS}/${member.id}`).set(bearer(operator)).expect(200);
    expect(res.body.data).toMatchObject({ id: member.id, external_id: member.externalId, quota_balance: 50 });
    expectProblem(await request(t.server).get(`${MEMBERS}/987654321`).set(bearer(admin)), 404, 'not_found');
    expectProblem(await request(t.server).get(`${MEMBERS}/1x`).set(bearer(admin)), 404, 'not_found');
  });

  it('a type change shifts the balance by the difference of max_quota and writes membership_change', async () => {
    const regular = await createConfig(t, { maxQuota: 50 });
    const premium = await createConfig(t, { maxQuota: 200 });
    const small = await createConfig(t, { maxQuota: 10 });
    const member = await createMember(t, { membershipType: regular.membershipType });
    await request(t.server)
      .post(`/api/v1/admin/quota/members/${member.id}/adjust`)
      .set(bearer(admin))
      .send({ delta: -30 })
      .expect(200);

    const up = await request(t.server)
      .patch(`${MEMBERS}/${member.id}`)
      .set(bearer(operator))
      .send({ membership_type: premium.membershipType });
    expect(up.status).toBe(200);
    expect(up.body.data).toMatchObject({ membership_type: premium.membershipType, quota_balance: 170 });

    const down = await request(t.server)
      .patch(`${MEMBERS}/${member.id}`)
      .set(bearer(operator))
      .send({ membership_type: small.membershipType });
    expect(down.body.data).toMatchObject({ membership_type: small.membershipType, quota_balance: 0 });

    const history = await historyOf(t, member.id);
    expect(history.map((h) => [h.reason, h.delta, h.balance_after, h.note])).toEqual([
      ['initial_grant', 50, 50, null],
      ['manual_adjustment', -30, 20, null],
      ['membership_change', 150, 170, `${regular.membershipType} -> ${premium.membershipType}`],
      ['membership_change', -170, 0, `${premium.membershipType} -> ${small.membershipType}`],
    ]);
    expect(history[2].actor).toBe(operatorId);
    // The types are stored as data too, for readers that must not parse the note.
    const types = await sql<{ from_membership_type: string | null; to_membership_type: string | null }>(
      t,
      'SELECT from_membership_type, to_membership_type FROM member_quota_history WHERE member_id = ? ORDER BY id',
      [member.id],
    );
    expect(types.map((r) => [r.from_membership_type, r.to_membership_type])).toEqual([
      [null, null],
      [null, null],
      [regular.membershipType, premium.membershipType],
      [premium.membershipType, small.membershipType],
    ]);
    expect(await ledgerReport(t, member.id)).toEqual({ checked: 1, mismatches: [], held_mismatches: [] });

    const audit = await sql<{ action: string }>(
      t,
      "SELECT action FROM admin_audit_log WHERE entity_type = 'member' AND entity_id = ? ORDER BY id",
      [member.id],
    );
    expect(audit.map((a) => a.action)).toEqual(['member.create', 'member.adjust', 'member.update', 'member.update']);

    // Same type again: nothing to do, nothing written.
    const before = await quotaSnapshot(t);
    const same = await request(t.server)
      .patch(`${MEMBERS}/${member.id}`)
      .set(bearer(operator))
      .send({ membership_type: small.membershipType });
    expect(same.status).toBe(200);
    expect(await quotaSnapshot(t)).toEqual(before);
  });

  it('PATCH is_active switches consumption off and on; unknown/inactive types are refused', async () => {
    const member = await createMember(t);
    const off = await request(t.server).patch(`${MEMBERS}/${member.id}`).set(bearer(admin)).send({ is_active: false });
    expect(off.status).toBe(200);
    expect(off.body.data.is_active).toBe(false);
    const [row] = await sql(t, 'SELECT is_active FROM members WHERE id = ?', [member.id]);
    expect(row).toEqual({ is_active: 0 });
    expect(await historyOf(t, member.id)).toHaveLength(1);

    const inactive = await createConfig(t, { isActive: false });
    const before = await quotaSnapshot(t);
    expectProblem(
      await request(t.server).patch(`${MEMBERS}/${member.id}`).set(bearer(admin)).send({ membership_type: 'nope' }),
      422,
      'validation_failed',
    );
    expectProblem(
      await request(t.server)
        .patch(`${MEMBERS}/${member.id}`)
        .set(bearer(admin))
        .send({ membership_type: inactive.membershipType }),
      409,
      'config_inactive',
    );
    expectProblem(
      await request(t.server).patch(`${MEMBERS}/987654321`).set(bearer(admin)).send({ is_active: true }),
      404,
      'not_found',
    );
    expect(await quotaSnapshot(t)).toEqual(before);
  });

  describe('batch', () => {
    it('creates up to 1,000 members at once, each with its initial_grant', async () => {
      const config = await createConfig(t, { maxQuota: 25 });
      const members = Array.from({ length: 1000 }, (_, i) => ({
        external_id: uniqueExternalId(`batch${i}`),
        membership_type: config.membershipType,
        ...(i % 10 === 0 ? { initial_quota: i } : {}),
      }));
      // Every statement the service's query runners send while the batch is written.
      const runner = t.app.get(DataSource).createQueryRunner();
      const sent = jest.spyOn(Object.getPrototypeOf(runner) as { query: (sql: string) => Promise<unknown> }, 'query');
      await runner.release();
      let res: request.Response;
      let statements: string[];
      try {
        res = await request(t.server).post(`${MEMBERS}/batch`).set(bearer(admin)).send({ members });
      } finally {
        statements = sent.mock.calls.map(([statement]) => statement);
        sent.mockRestore();
      }
      expect(res.status).toBe(201);
      expect(res.body.meta).toEqual({ created: 1000 });
      // The audit rows are written set-based: two multi-row inserts of 500, not 1,000 statements.
      expect(statements.filter((statement) => /INSERT INTO\W+admin_audit_log/i.test(statement))).toHaveLength(2);
      const [audited] = await sql<{ n: unknown }>(
        t,
        "SELECT COUNT(*) AS n FROM admin_audit_log WHERE action = 'member.create' AND entity_id IN (SELECT CAST(id AS CHAR) FROM members WHERE membership_type = ?)",
        [config.membershipType],
      );
      expect(Number(audited.n)).toBe(1000);
      expect(res.body.data).toHaveLength(1000);
      expect(res.body.data[0]).toMatchObject({ external_id: members[0].external_id, quota_balance: 0 });
      expect(res.body.data[1]).toMatchObject({ external_id: members[1].external_id, quota_balance: 25 });
      expect(res.body.data[10]).toMatchObject({ quota_balance: 10 });
      const [count] = await sql<{ n: unknown }>(
        t,
        "SELECT COUNT(*) AS n FROM member_quota_history h JOIN members m ON m.id = h.member_id WHERE m.membership_type = ? AND h.reason = 'initial_grant'",
        [config.membershipType],
      );
      expect(Number(count.n)).toBe(1000);
      expect((await ledgerReport(t)).mismatches).toEqual([]);
    });

    it('is all or nothing: 409 lists the external ids that exist, and nothing is created', async () => {
      const existing = await createMember(t);
      const other = await createMember(t, { membershipType: existing.membershipType });
      const before = await quotaSnapshot(t);
      const res = await request(t.server)
        .post(`${MEMBERS}/batch`)
        .set(bearer(admin))
        .send({
          members: [
            { external_id: uniqueExternalId(), membership_type: existing.membershipType },
            { external_id: other.externalId, membership_type: existing.membershipType },
            { external_id: existing.externalId, membership_type: existing.membershipType },
          ],
        });
      expectProblem(res, 409, 'member_exists');
      expect(res.body.external_ids).toEqual([existing.externalId, other.externalId].sort());
      expect(await quotaSnapshot(t)).toEqual(before);
    });

    it('refuses repeats within the batch, more than 1,000, an empty list and bad entries (422), changing nothing', async () => {
      const config = await createConfig(t);
      const before = await quotaSnapshot(t);
      const repeated = uniqueExternalId();
      const cases: [unknown, string][] = [
        [
          {
            members: [
              { external_id: repeated, membership_type: config.membershipType },
              { external_id: repeated, membership_type: config.membershipType },
            ],
          },
          'members',
        ],
        [
          {
            members: Array.from({ length: 1001 }, () => ({
              external_id: uniqueExternalId(),
              membership_type: config.membershipType,
            })),
          },
          'members',
        ],
        [{ members: [] }, 'members'],
        [
          { members: [{ external_id: uniqueExternalId(), membership_type: config.membershipType, extra: 1 }] },
          'members.0.extra',
        ],
        [
          { members: [{ external_id: uniqueExternalId(), membership_type: config.membershipType, initial_quota: -1 }] },
          'members.0.initial_quota',
        ],
        [{ members: [{ external_id: uniqueExternalId(), membership_type: 'nope' }] }, 'members.0.membership_type'],
        [{ members: 'all' }, 'members'],
        [{ members: [5] }, 'members.0'],
      ];
      for (const [body, field] of cases) {
        const res = await request(t.server)
          .post(`${MEMBERS}/batch`)
          .set(bearer(admin))
          .send(body as object);
        expectProblem(res, 422, 'validation_failed');
        expect(res.body.errors.map((e: { field: string }) => e.field)).toContain(field);
      }
      expect(await quotaSnapshot(t)).toEqual(before);
    });
  });
});
