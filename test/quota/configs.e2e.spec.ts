import request from 'supertest';
import { bearer, loginAs } from '../support/auth';
import { createMember, quotaSnapshot, sql, uniqueType } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';
import { expectProblem, ISO_MS } from '../auth/helpers';

const CONFIGS = '/api/v1/admin/quota/configs';

describe('quota configs', () => {
  let t: TestApp;
  let admin: string;
  let operator: string;
  let adminId: string;

  beforeAll(async () => {
    t = await startTestApp({ env: { THROTTLE_LIMIT: '0' } });
    const a = await loginAs(t, 'admin');
    admin = a.token;
    adminId = a.userId;
    operator = (await loginAs(t, 'operator')).token;
  });
  afterAll(async () => {
    await t?.close();
  });

  const auditFor = (id: string) =>
    sql<{ action: string; actor_user_id: unknown; before_json: string | null; after_json: string | null }>(
      t,
      "SELECT action, actor_user_id, before_json, after_json FROM admin_audit_log WHERE entity_type = 'quota_config' AND entity_id = ? ORDER BY id",
      [id],
    );

  it('creates a config from the seed body: 201 with defaults, and an audit row', async () => {
    const type = uniqueType('regular');
    const res = await request(t.server).post(CONFIGS).set(bearer(admin)).send({ membership_type: type, max_quota: 50 });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({
      data: {
        id: expect.stringMatching(/^\d+$/),
        membership_type: type,
        max_quota: 50,
        reset_period: 'none',
        is_active: true,
        description: null,
        created_at: expect.stringMatching(ISO_MS),
        updated_at: expect.stringMatching(ISO_MS),
      },
    });
    const rows = await sql(
      t,
      'SELECT membership_type, max_quota, reset_period, is_active FROM member_quota_config WHERE id = ?',
      [res.body.data.id],
    );
    expect(rows).toEqual([{ membership_type: type, max_quota: 50, reset_period: 'none', is_active: 1 }]);
    const audit = await auditFor(res.body.data.id);
    expect(audit).toHaveLength(1);
    expect(audit[0].action).toBe('quota_config.create');
    expect(String(audit[0].actor_user_id)).toBe(adminId);
    expect(audit[0].before_json).toBeNull();
    expect(JSON.parse(audit[0].after_json!)).toMatchObject({ membership_type: type, max_quota: 50 });
  });

  it('accepts every contract field', async () => {
    const type = uniqueType();
    const res = await request(t.server).post(CONFIGS).set(bearer(admin)).send({
      membership_type: type,
      max_quota: 1000,
      reset_period: 'monthly',
      is_active: false,
      description: 'Premium members',
    });
    expect(res.status).toBe(201);
    expect(res.body.data).toMatchObject({
      membership_type: type,
      max_quota: 1000,
      reset_period: 'monthly',
      is_active: false,
      description: 'Premium members',
    });
  });

  it('refuses a duplicate membership_type with 409 and changes nothing', async () => {
    const type = uniqueType();
    await request(t.server).post(CONFIGS).set(bearer(admin)).send({ membership_type: type, max_quota: 5 }).expect(201);
    const before = await quotaSnapshot(t);
    const res = await request(t.server).post(CONFIGS).set(bearer(admin)).send({ membership_type: type, max_quota: 7 });
    expectProblem(res, 409, 'duplicate_membership_type');
    expect(res.body.membership_type).toBe(type);
    expect(await quotaSnapshot(t)).toEqual(before);
  });

  it('lists configs (operators too) and filters on is_active', async () => {
    const active = uniqueType();
    const inactive = uniqueType();
    await request(t.server)
      .post(CONFIGS)
      .set(bearer(admin))
      .send({ membership_type: active, max_quota: 1 })
      .expect(201);
    await request(t.server)
      .post(CONFIGS)
      .set(bearer(admin))
      .send({ membership_type: inactive, max_quota: 1, is_active: false })
      .expect(201);

    const all = await request(t.server).get(CONFIGS).set(bearer(operator)).expect(200);
    const types = all.body.data.map((c: { membership_type: string }) => c.membership_type);
    expect(types).toEqual(expect.arrayContaining([active, inactive]));
    expect(all.body.meta).toEqual({ page: 1, per_page: all.body.data.length, total: all.body.data.length });

    const onlyActive = await request(t.server).get(`${CONFIGS}?is_active=true`).set(bearer(admin)).expect(200);
    expect(onlyActive.body.data.every((c: { is_active: boolean }) => c.is_active)).toBe(true);
    expect(onlyActive.body.data.map((c: { membership_type: string }) => c.membership_type)).toContain(active);
    const onlyInactive = await request(t.server).get(`${CONFIGS}?is_active=false`).set(bearer(admin)).expect(200);
    expect(onlyInactive.body.data.map((c: { membership_type: string }) => c.membership_type)).toEqual(
      expect.arrayContaining([inactive]),
    );
    expect(onlyInactive.body.data.every((c: { is_active: boolean }) => !c.is_active)).toBe(true);
  });

  it('gets one config; unknown and malformed ids are 404', async () => {
    const created = await request(t.server)
      .post(CONFIGS)
      .set(bearer(admin))
      .send({ membership_type: uniqueType(), max_quota: 3 })
      .expect(201);
    const res = await request(t.server).get(`${CONFIGS}/${created.body.data.id}`).set(bearer(operator)).expect(200);
    expect(res.body).toEqual({ data: created.body.data });
    expectProblem(await request(t.server).get(`${CONFIGS}/987654321`).set(bearer(admin)), 404, 'not_found');
    expectProblem(await request(t.server).get(`${CONFIGS}/abc`).set(bearer(admin)), 404, 'not_found');
    expectProblem(await request(t.server).get(`${CONFIGS}/99999999999999999999`).set(bearer(admin)), 404, 'not_found');
  });

  it('PATCH applies at the next reset: the config changes, member balances do not', async () => {
    const member = await createMember(t, { maxQuota: 50 });
    const [config] = await sql<{ id: unknown }>(t, 'SELECT id FROM member_quota_config WHERE membership_type = ?', [
      member.membershipType,
    ]);
    const id = String(config.id);
    const res = await request(t.server)
      .patch(`${CONFIGS}/${id}`)
      .set(bearer(admin))
      .send({ max_quota: 80, reset_period: 'daily', description: 'more', apply: 'next_reset' });
    expect(res.status).toBe(200);
    expect(res.body.data).toMatchObject({ id, max_quota: 80, reset_period: 'daily', description: 'more' });
    expect(new Date(res.body.data.updated_at).getTime()).toBeGreaterThanOrEqual(
      new Date(res.body.data.created_at).getTime(),
    );
    const [stored] = await sql(t, 'SELECT quota_balance FROM members WHERE id = ?', [member.id]);
    expect(stored).toEqual({ quota_balance: 50 });
    const audit = await auditFor(id);
    expect(audit.map((a) => a.action)).toEqual(['quota_config.create', 'quota_config.update']);
    expect(JSON.parse(audit[1].before_json!)).toMatchObject({ max_quota: 50, reset_period: 'none' });
    expect(JSON.parse(audit[1].after_json!)).toMatchObject({
      max_quota: 80,
      reset_period: 'daily',
      apply: 'next_reset',
    });

    // description can be cleared with null
    const cleared = await request(t.server).patch(`${CONFIGS}/${id}`).set(bearer(admin)).send({ description: null });
    expect(cleared.status).toBe(200);
    expect(cleared.body.data.description).toBeNull();
  });

  it('PATCH refuses an unknown apply mode and changes nothing', async () => {
    const created = await request(t.server)
      .post(CONFIGS)
      .set(bearer(admin))
      .send({ membership_type: uniqueType(), max_quota: 10 })
      .expect(201);
    const before = await quotaSnapshot(t);
    for (const apply of ['later', 'DELTA', 1]) {
      const res = await request(t.server)
        .patch(`${CONFIGS}/${created.body.data.id}`)
        .set(bearer(admin))
        .send({ max_quota: 20, apply });
      expectProblem(res, 422, 'validation_failed');
      expect(res.body.errors.map((e: { field: string }) => e.field)).toEqual(['apply']);
    }
    expect(await quotaSnapshot(t)).toEqual(before);
  });

  it('DELETE answers 204, and 409 config_in_use while members have the type', async () => {
    const unused = await request(t.server)
      .post(CONFIGS)
      .set(bearer(admin))
      .send({ membership_type: uniqueType(), max_quota: 10 })
      .expect(201);
    const del = await request(t.server).delete(`${CONFIGS}/${unused.body.data.id}`).set(bearer(admin));
    expect(del.status).toBe(204);
    expect(del.text).toBe('');
    expect(await sql(t, 'SELECT id FROM member_quota_config WHERE id = ?', [unused.body.data.id])).toEqual([]);
    const audit = await auditFor(unused.body.data.id);
    expect(audit.map((a) => a.action)).toEqual(['quota_config.create', 'quota_config.delete']);
    expect(audit[1].after_json).toBeNull();

    const member = await createMember(t);
    const [config] = await sql<{ id: unknown }>(t, 'SELECT id FROM member_quota_config WHERE membership_type = ?', [
      member.membershipType,
    ]);
    const before = await quotaSnapshot(t);
    const refused = await request(t.server)
      .delete(`${CONFIGS}/${String(config.id)}`)
      .set(bearer(admin));
    expectProblem(refused, 409, 'config_in_use');
    expect(await quotaSnapshot(t)).toEqual(before);

    expectProblem(await request(t.server).delete(`${CONFIGS}/987654321`).set(bearer(admin)), 404, 'not_found');
  });
});
