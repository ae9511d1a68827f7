import request from 'supertest';
import { AuditLogEntry } from '../../src/audit/audit-log.entity';
import { expectProblem, dataSourceOf } from '../auth/helpers';
import { bearer, createUser, loginAs, type LoggedIn } from '../support/auth';
import { createConfig, createMember, sql } from '../support/quota-factories';
import { ROUTE_RULES, routeKey, type RouteRule } from '../support/route-rules';
import { startTestApp, type TestApp } from '../support/test-app';
import { waitForOperation } from '../jobs/helpers';
import { MAINTENANCE, setReadOnly, storedSwitch, wholeDatabase } from './helpers';

/** Writes that keep working during a freeze; every other non-GET route must be refused. */
const ALLOWED_WRITES = ['POST /api/v1/auth/login', `PUT ${MAINTENANCE}`];

describe('write freeze (maintenance mode)', () => {
  let t: TestApp;
  let admin: LoggedIn;
  let operator: LoggedIn;
  let service: LoggedIn;
  let member: LoggedIn;
  let memberId: string;
  let configId: string;
  let membershipType: string;
  let holdId: string;
  let operationId: string;

  beforeAll(async () => {
    t = await startTestApp({ env: { THROTTLE_LIMIT: '0', THROTTLE_LOGIN_LIMIT: '0' } });
    admin = await loginAs(t, 'admin');
    operator = await loginAs(t, 'operator');
    service = await loginAs(t, 'service');
    const config = await createConfig(t, { maxQuota: 50 });
    configId = config.id;
    membershipType = config.membershipType;
    memberId = (await createMember(t, { membershipType })).id;
    member = await loginAs(t, 'member', { memberId });
    const hold = await request(t.server)
      .post(`/api/v1/quota/members/${memberId}/holds`)
      .set(bearer(service.token))
      .send({ amount: 5, ttl_seconds: 86_400 });
    expect(hold.status).toBe(201);
    holdId = hold.body.data.hold_id;
    // A finished operation, for the cancel route.
    const bulk = await request(t.server)
      .post('/api/v1/admin/quota/bulk-adjust')
      .set(bearer(admin.token))
      .send({ member_ids: [memberId], delta: 1 });
    expect(bulk.status).toBe(202);
    operationId = bulk.body.data.operation_id;
    expect(await waitForOperation(t, admin.token, operationId)).toMatchObject({ status: 'completed' });
  });

  afterAll(async () => {
    await t?.close();
  });

  const auditRows = () =>
    dataSourceOf(t)
      .getRepository(AuditLogEntry)
      .find({ where: { entityType: 'maintenance' }, order: { id: 'ASC' } });

  /** A request that would change something if the service were writable (valid body, real ids). */
  const validWrite = (rule: RouteRule): { path: string; body?: object; token?: string } => {
    const admins = { token: admin.token };
    switch (routeKey(rule)) {
      case 'POST /api/v1/admin/quota/bulk-adjust':
        return { ...admins, path: rule.path, body: { member_ids: [memberId], delta: 1 } };
      case 'POST /api/v1/admin/quota/operations/:id/cancel':
        return { ...admins, path: rule.path.replace(':id', operationId) };
      case 'POST /api/v1/admin/quota/configs':
        return { ...admins, path: rule.path, body: { membership_type: `frozen${Date.now()}`, max_quota: 5 } };
      case 'PATCH /api/v1/admin/quota/configs/:id':
        return { ...admins, path: rule.path.replace(':id', configId), body: { max_quota: 70, apply: 'reset' } };
      case 'DELETE /api/v1/admin/quota/configs/:id':
        return { ...admins, path: rule.path.replace(':id', configId) };
      case 'POST /api/v1/admin/members':
        return { ...admins, path: rule.path, body: { external_id: 'frozen-1', membership_type: membershipType } };
      case 'POST /api/v1/admin/members/batch':
        return {
          ...admins,
          path: rule.path,
          body: { members: [{ external_id: 'frozen-2', membership_type: membershipType }] },
        };
      case 'PATCH /api/v1/admin/members/:id':
        return { ...admins, path: rule.path.replace(':id', memberId), body: { membership_type: membershipType } };
      case 'POST /api/v1/admin/quota/members/:id/adjust':
        return { ...admins, path: rule.path.replace(':id', memberId), body: { delta: 3 } };
      case 'POST /api/v1/quota/members/:id/consume':
      case 'POST /api/v1/quota/members/:id/refund':
        return { token: service.token, path: rule.path.replace(':id', memberId), body: { amount: 1 } };
      case 'POST /api/v1/quota/members/:id/holds':
        return { token: service.token, path: rule.path.replace(':id', memberId), body: { amount: 1 } };
      case 'POST /api/v1/quota/me/consume':
      case 'POST /api/v1/quota/me/holds':
        return { token: member.token, path: rule.path, body: { amount: 1 } };
      case 'POST /api/v1/quota/holds/:hold_id/commit':
      case 'POST /api/v1/quota/holds/:hold_id/release':
        return { token: service.token, path: rule.path.replace(':hold_id', holdId) };
      case 'POST /api/v1/admin/users':
        return {
          ...admins,
          path: rule.path,
          body: { email: 'frozen@example.test', password: 'long-enough-pw-1', role: 'operator' },
        };
      case 'PATCH /api/v1/admin/users/:id':
        return { ...admins, path: rule.path.replace(':id', operator.userId), body: { is_active: false } };
      default: {
        // A route added since this list was written: the rule is the method, so it is refused too.
        const role = rule.allowed === 'public' ? undefined : rule.allowed.includes('admin') ? 'admin' : rule.allowed[0];
        const token = { admin, operator, service, member }[role ?? 'admin']?.token;
        return { token: role ? token : undefined, path: rule.path.replace(/:[A-Za-z_]+/g, '987654321'), body: {} };
      }
    }
  };

  const send = (method: string, path: string, token?: string, body?: object) => {
    let req = request(t.server)[method.toLowerCase() as 'post' | 'patch' | 'put' | 'delete'](path);
    if (token) req = req.set(bearer(token));
    return body === undefined ? req : req.send(body);
  };

  const writeRules = ROUTE_RULES.filter((rule) => rule.method !== 'GET' && !ALLOWED_WRITES.includes(routeKey(rule)));

  it('starts writable: GET answers the switch for admin and operator', async () => {
    for (const token of [admin.token, operator.token]) {
      const res = await request(t.server).get(MAINTENANCE).set(bearer(token));
      expect({ status: res.status, body: res.body }).toEqual({
        status: 200,
        body: { data: { read_only: false, reason: null, since: null, by: null } },
      });
    }
    expect(await storedSwitch(t)).toEqual({ read_only: false, reason: null, since: null, changed_by: null });
  });

  it('refuses other roles (403) and bad input (problem+json), changing nothing', async () => {
    const before = await wholeDatabase(t);
    expectProblem(await send('PUT', MAINTENANCE, operator.token, { read_only: true }), 403, 'forbidden');
    for (const caller of [service, member]) {
      expectProblem(await request(t.server).get(MAINTENANCE).set(bearer(caller.token)), 403, 'forbidden');
      expectProblem(await send('PUT', MAINTENANCE, caller.token, { read_only: true }), 403, 'forbidden');
    }
    expectProblem(await request(t.server).put(MAINTENANCE).send({ read_only: true }), 401, 'unauthorized');
    const bad: [object, string][] = [
      [{}, 'read_only'],
      [{ read_only: 'yes' }, 'read_only'],
      [{ read_only: 1 }, 'read_only'],
      [{ read_only: true, reason: 'x'.repeat(501) }, 'reason'],
      [{ read_only: true, reason: null }, 'reason'],
      [{ read_only: true, reason: 42 }, 'reason'],
      [{ read_only: true, extra: 1 }, 'extra'],
    ];
    for (const [body, field] of bad) {
      const res = await send('PUT', MAINTENANCE, admin.token, body);
      expectProblem(res, 422, 'validation_failed');
      expect({ body, fields: res.body.errors.map((e: { field: string }) => e.field) }).toEqual({
        body,
        fields: expect.arrayContaining([field]),
      });
    }
    const malformed = await request(t.server)
      .put(MAINTENANCE)
      .set(bearer(admin.token))
      .set('Content-Type', 'application/json')
      .send('{"read_only": tru');
    expectProblem(malformed, 400, 'malformed_json');
    expectProblem(
      await request(t.server).put(`${MAINTENANCE}?force=1`).set(bearer(admin.token)).send({ read_only: true }),
      422,
      'validation_failed',
    );
    expect(await wholeDatabase(t)).toEqual(before);
  });

  it('freezes: every write route answers 503 read_only with Retry-After and changes nothing', async () => {
    const turnedOn = Date.now();
    const res = await setReadOnly(t, admin.token, true, 'restoring the 02:00 backup');
    expect(res.body.data).toEqual({
      read_only: true,
      reason: 'restoring the 02:00 backup',
      since: expect.any(String),
      by: admin.email,
    });
    expect(Math.abs(Date.parse(res.body.data.since) - turnedOn)).toBeLessThan(5000);
    expect(await storedSwitch(t)).toEqual({
      read_only: true,
      reason: 'restoring the 02:00 backup',
      since: res.body.data.since,
      changed_by: admin.email,
    });
    const audit = await auditRows();
    expect(audit).toEqual([
      expect.objectContaining({
        action: 'maintenance.read_only_on',
        actorUserId: admin.userId,
        actorLabel: admin.email,
        entityId: '1',
      }),
    ]);
    expect(JSON.parse(audit[0].beforeJson!)).toEqual({ read_only: false, reason: null, since: null, by: null });
    expect(JSON.parse(audit[0].afterJson!)).toEqual(res.body.data);

    const before = await wholeDatabase(t);
    expect(writeRules.length).toBeGreaterThanOrEqual(17);
    for (const rule of writeRules) {
      const write = validWrite(rule);
      const answer = await send(rule.method, write.path, write.token, write.body);
      expect({ route: routeKey(rule), status: answer.status, code: answer.body?.code }).toEqual({
        route: routeKey(rule),
        status: 503,
        code: 'read_only',
      });
      expectProblem(answer, 503, 'read_only');
      expect(answer.headers['retry-after']).toBe('60');
    }
    // Validation comes after the freeze: a bad body is refused as read_only too.
    expectProblem(
      await send('POST', `/api/v1/quota/members/${memberId}/consume`, service.token, { amount: -1 }),
      503,
      'read_only',
    );
    // Authentication and roles come first.
    expectProblem(
      await send('POST', `/api/v1/quota/members/${memberId}/consume`, undefined, { amount: 1 }),
      401,
      'unauthorized',
    );
    expectProblem(
      await send('POST', '/api/v1/admin/quota/configs', operator.token, { membership_type: 'x', max_quota: 1 }),
      403,
      'forbidden',
    );
    // Nothing changed, anywhere (background writers are paused too).
    expect(await wholeDatabase(t)).toEqual(before);
  });

  it('keeps reads, login, health, metrics and the switch working while frozen', async () => {
    expect(await wholeDatabase(t).then((db) => db.quota_maintenance)).toHaveLength(1);
    const reads = [
      [`/api/v1/quota/members/${memberId}`, service.token],
      ['/api/v1/quota/me', member.token],
      [`/api/v1/admin/members/${memberId}`, operator.token],
      ['/api/v1/admin/quota/configs', operator.token],
      [`/api/v1/quota/holds/${holdId}`, service.token],
      [`/api/v1/admin/quota/operations/${operationId}`, admin.token],
      ['/api/v1/admin/quota/history', admin.token],
      ['/api/v1/auth/me', member.token],
      [MAINTENANCE, operator.token],
    ];
    for (const [path, token] of reads) {
      const res = await request(t.server).get(path).set(bearer(token));
      expect({ path, status: res.status }).toEqual({ path, status: 200 });
    }
    const fresh = await createUser(t, { role: 'operator' });
    const login = await request(t.server)
      .post('/api/v1/auth/login')
      .send({ email: fresh.email, password: fresh.password });
    expect(login.status).toBe(200);
    expect(typeof login.body.data.access_token).toBe('string');

    const health = await request(t.server).get('/api/v1/health');
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({
      status: 'healthy',
      database: 'connected',
      quota_system: 'degraded',
      details: {
        maintenance: { status: 'read_only', reason: 'restoring the 02:00 backup', since: expect.any(String) },
      },
    });
    expect((await request(t.server).get('/api/v1/health/ready')).status).toBe(200);
    expect((await request(t.server).get('/api/v1/health/live')).status).toBe(200);
    const metrics = (await request(t.server).get('/metrics')).text;
    expect(metrics).toMatch(/^quota_read_only 1$/m);
  });

  it('an instance that starts during the freeze reads the switch before it serves anything', async () => {
    // The first poll comes 1.5 s after start-up: only the start-up read can refuse this write.
    const late = await startTestApp({
      database: t.database,
      env: { THROTTLE_LIMIT: '0', MAINTENANCE_POLL_INTERVAL_MS: '1500' },
    });
    try {
      const res = await request(late.server)
        .post(`/api/v1/quota/members/${memberId}/consume`)
        .set(bearer(service.token))
        .send({ amount: 1 });
      expectProblem(res, 503, 'read_only');
    } finally {
      await late.close();
    }
  });

  it('keeps the last known state when the switch cannot be read', async () => {
    const before = await wholeDatabase(t);
    await sql(t, 'ALTER TABLE quota_maintenance RENAME TO quota_maintenance_away');
    try {
      // Several polls fail meanwhile.
      await new Promise((r) => setTimeout(r, 1500));
      expectProblem(
        await send('POST', `/api/v1/quota/members/${memberId}/consume`, service.token, { amount: 1 }),
        503,
        'read_only',
      );
      expect((await request(t.server).get(MAINTENANCE).set(bearer(admin.token))).body.data.read_only).toBe(true);
    } finally {
      await sql(t, 'ALTER TABLE quota_maintenance_away RENAME TO quota_maintenance');
    }
    expect(await wholeDatabase(t)).toEqual(before);
  });

  it('freezing again keeps since and the reason unless a new one is given', async () => {
    const { since } = await storedSwitch(t);
    const again = await setReadOnly(t, admin.token, true);
    expect(again.body.data).toMatchObject({ read_only: true, reason: 'restoring the 02:00 backup', since });
    const reworded = await setReadOnly(t, admin.token, true, 'verifying the restore');
    expect(reworded.body.data).toMatchObject({ reason: 'verifying the restore', since });
  });

  it('unfreezes: writes work again at once, health is operational, the gauge is 0, every change audited', async () => {
    const off = await setReadOnly(t, admin.token, false);
    expect(off.body.data).toEqual({ read_only: false, reason: null, since: expect.any(String), by: admin.email });
    expect(await storedSwitch(t)).toMatchObject({ read_only: false, reason: null, changed_by: admin.email });
    const consume = await send('POST', `/api/v1/quota/members/${memberId}/consume`, service.token, { amount: 2 });
    expect(consume.status).toBe(200);
    const balance = await sql<{ quota_balance: unknown }>(t, 'SELECT quota_balance FROM members WHERE id = ?', [
      memberId,
    ]);
    expect(Number(balance[0].quota_balance)).toBe(50 + 1 - 5 - 2);
    const health = await request(t.server).get('/api/v1/health');
    expect(health.body.quota_system).toBe('operational');
    expect(health.body.details.maintenance).toBeUndefined();
    expect((await request(t.server).get('/metrics')).text).toMatch(/^quota_read_only 0$/m);
    expect((await auditRows()).map((row) => [row.action, row.actorLabel])).toEqual([
      ['maintenance.read_only_on', admin.email],
      ['maintenance.read_only_on', admin.email],
      ['maintenance.read_only_on', admin.email],
      ['maintenance.read_only_off', admin.email],
    ]);
  });
});
