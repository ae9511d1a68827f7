import request from 'supertest';
import { AuditLogEntry } from '../../src/audit/audit-log.entity';
import { User } from '../../src/auth/user.entity';
import { bearer, createTestMember, createUser, loginAs, type LoggedIn } from '../support/auth';
import { startTestApp, type TestApp } from '../support/test-app';
import { auditRowsFor, dataSourceOf, expectProblem, ISO_MS, storedUser, tableCounts, userStates } from './helpers';

describe('admin users API', () => {
  let testApp: TestApp;
  let admin: LoggedIn;

  beforeAll(async () => {
    testApp = await startTestApp({ env: { THROTTLE_LIMIT: '0', THROTTLE_LOGIN_LIMIT: '0' } });
    admin = await loginAs(testApp, 'admin', { email: 'first.admin@example.test' });
  });

  afterAll(async () => {
    await testApp?.close();
  });

  const api = () => request(testApp.server);
  const create = (body: unknown) =>
    api()
      .post('/api/v1/admin/users')
      .set(bearer(admin.token))
      .send(body as object);
  const patch = (id: string, body: unknown) =>
    api()
      .patch(`/api/v1/admin/users/${id}`)
      .set(bearer(admin.token))
      .send(body as object);

  /** Runs a refused request and proves it changed nothing at all. */
  async function refusedWithoutChange(send: () => Promise<request.Response>, status: number, code: string) {
    const counts = await tableCounts(testApp);
    const users = await userStates(testApp);
    const res = await send();
    expectProblem(res, status, code);
    expect(await tableCounts(testApp)).toEqual(counts);
    expect(await userStates(testApp)).toEqual(users);
    return res;
  }

  describe('POST /api/v1/admin/users', () => {
    it('creates a user: 201 with the user, an argon2id hash in the database and an audit row', async () => {
      const res = await create({
        email: 'New.Operator@Example.TEST',
        password: 'operator-password-1',
        role: 'operator',
      });
      expect(res.status).toBe(201);
      const body = res.body as { data: Record<string, unknown> };
      expect(body).toEqual({
        data: {
          id: expect.stringMatching(/^\d+$/),
          email: 'new.operator@example.test',
          role: 'operator',
          member_id: null,
          is_active: true,
          created_at: expect.stringMatching(ISO_MS),
          updated_at: expect.stringMatching(ISO_MS),
        },
      });
      const id = body.data.id as string;
      const stored = await storedUser(testApp, id);
      expect(stored).toEqual(
        expect.objectContaining({
          email: 'new.operator@example.test',
          role: 'operator',
          isActive: true,
          tokenVersion: 1,
        }),
      );
      expect(stored.passwordHash).toMatch(/^\$argon2id\$/);
      expect(stored.passwordHash).not.toContain('operator-password-1');

      const [audit] = await auditRowsFor(testApp, id);
      expect(audit).toEqual(
        expect.objectContaining({
          actorUserId: String(admin.userId),
          actorLabel: admin.email,
          action: 'user.create',
          entityType: 'user',
          entityId: id,
          beforeJson: null,
          requestId: res.headers['x-request-id'],
        }),
      );
      expect(JSON.parse(audit.afterJson!)).toEqual({
        email: 'new.operator@example.test',
        role: 'operator',
        member_id: null,
        is_active: true,
        password_changed_at: expect.stringMatching(ISO_MS),
      });
      expect(audit.afterJson).not.toMatch(/argon2|operator-password-1/);
    });

    it('links a member user to its member (id as a string or a JSON number)', async () => {
      const { memberId } = await createTestMember(testApp);
      const res = await create({
        email: 'member.one@example.test',
        password: 'member-password-1',
        role: 'member',
        member_id: memberId,
      });
      expect(res.status).toBe(201);
      expect((res.body as { data: { member_id: string } }).data.member_id).toBe(memberId);
      const other = await createTestMember(testApp);
      const asNumber = await create({
        email: 'member.two@example.test',
        password: 'member-password-1',
        role: 'member',
        member_id: Number(other.memberId),
      });
      expect(asNumber.status).toBe(201);
      const stored = await storedUser(testApp, (asNumber.body as { data: { id: string } }).data.id);
      expect(String(stored.memberId)).toBe(other.memberId);
    });

    it('answers 409 email_taken for an email that exists in any letter case, and changes nothing', async () => {
      await createUser(testApp, { role: 'service', email: 'taken@example.test' });
      const res = await refusedWithoutChange(
        () => create({ email: 'TAKEN@example.TEST', password: 'another-password-1', role: 'operator' }),
        409,
        'email_taken',
      );
      expect((res.body as { detail: string }).detail).toMatch(/already exists/);
    });

    it.each([
      ['an empty body', {}, ['email', 'password', 'role']],
      ['an invalid email', { email: 'not-an-email', password: 'long-enough-pass', role: 'operator' }, ['email']],
      ['a short password', { email: 'short@example.test', password: 'short', role: 'operator' }, ['password']],
      ['a huge password', { email: 'huge@example.test', password: 'x'.repeat(300), role: 'operator' }, ['password']],
      ['an unknown role', { email: 'role@example.test', password: 'long-enough-pass', role: 'root' }, ['role']],
      [
        'a field that cannot be set (is_active)',
        { email: 'f@example.test', password: 'long-enough-pass', role: 'operator', is_active: false },
        ['is_active'],
      ],
      [
        'a field that does not exist',
        { email: 'g@example.test', password: 'long-enough-pass', role: 'admin', password_hash: 'x' },
        ['password_hash'],
      ],
      ['a wrongly typed email', { email: 42, password: 'long-enough-pass', role: 'operator' }, ['email']],
      [
        'a member without member_id',
        { email: 'm1@example.test', password: 'long-enough-pass', role: 'member' },
        ['member_id'],
      ],
      [
        'a member_id on a non-member',
        { email: 'm2@example.test', password: 'long-enough-pass', role: 'operator', member_id: '1' },
        ['member_id'],
      ],
      [
        'a malformed member_id',
        { email: 'm3@example.test', password: 'long-enough-pass', role: 'member', member_id: 'abc' },
        ['member_id'],
      ],
      [
        'an unknown member_id',
        { email: 'm4@example.test', password: 'long-enough-pass', role: 'member', member_id: '987654321' },
        ['member_id'],
      ],
    ])('refuses %s with 422 listing the fields, and changes nothing', async (_name, body, fields) => {
      const res = await refusedWithoutChange(() => create(body), 422, 'validation_failed');
      const reported = (res.body as { errors: Array<{ field: string; message: string }> }).errors;
      expect([...new Set(reported.map((e) => e.field))].sort()).toEqual([...fields].sort());
      for (const error of reported) expect(error.message).toEqual(expect.any(String));
    });

    it('refuses malformed JSON with 400 and changes nothing', async () => {
      await refusedWithoutChange(
        () =>
          api()
            .post('/api/v1/admin/users')
            .set(bearer(admin.token))
            .set('Content-Type', 'application/json')
            .send('{"email":'),
        400,
        'malformed_json',
      );
    });
  });

  describe('GET /api/v1/admin/users', () => {
    it('lists users in id order with page, per_page and total', async () => {
      const total = await dataSourceOf(testApp).getRepository(User).count();
      const res = await api().get('/api/v1/admin/users?page=2&per_page=2').set(bearer(admin.token));
      expect(res.status).toBe(200);
      const body = res.body as { data: Array<{ id: string }>; meta: unknown };
      expect(body.meta).toEqual({ page: 2, per_page: 2, total });
      const all = await dataSourceOf(testApp)
        .getRepository(User)
        .find({ order: { id: 'ASC' } });
      expect(body.data.map((u) => u.id)).toEqual(all.slice(2, 4).map((u) => String(u.id)));
      expect(Object.keys(body.data[0]).sort()).toEqual(
        ['created_at', 'email', 'id', 'is_active', 'member_id', 'role', 'updated_at'].sort(),
      );
    });

    it('filters by role and is_active', async () => {
      const disabled = await createUser(testApp, { role: 'service' });
      await patch(disabled.userId, { is_active: false });
      const services = await api().get('/api/v1/admin/users?role=service&per_page=100').set(bearer(admin.token));
      const rows = (services.body as { data: Array<{ role: string; id: string }> }).data;
      expect(rows.length).toBeGreaterThan(0);
      expect(rows.every((u) => u.role === 'service')).toBe(true);
      const inactive = await api().get('/api/v1/admin/users?is_active=false').set(bearer(admin.token));
      const inactiveRows = inactive.body as {
        data: Array<{ id: string; is_active: boolean }>;
        meta: { total: number };
      };
      expect(inactiveRows.data.map((u) => u.id)).toContain(disabled.userId);
      expect(inactiveRows.data.every((u) => !u.is_active)).toBe(true);
      expect(inactiveRows.meta.total).toBe(
        await dataSourceOf(testApp).getRepository(User).countBy({ isActive: false }),
      );
    });

    it.each([
      ['page=0', 'page'],
      ['page=abc', 'page'],
      ['per_page=101', 'per_page'],
      ['per_page=1.5', 'per_page'],
      ['role=root', 'role'],
      ['is_active=maybe', 'is_active'],
      ['sort=email', 'sort'],
    ])('refuses ?%s with 422', async (query, field) => {
      const res = await refusedWithoutChange(
        () => api().get(`/api/v1/admin/users?${query}`).set(bearer(admin.token)),
        422,
        'validation_failed',
      );
      expect([...new Set((res.body as { errors: Array<{ field: string }> }).errors.map((e) => e.field))]).toEqual([
        field,
      ]);
    });
  });

  describe('PATCH /api/v1/admin/users/:id', () => {
    it('changes the role, bumps the token version and audits only what changed', async () => {
      const user = await createUser(testApp, { role: 'operator' });
      const res = await patch(user.userId, { role: 'admin' });
      expect(res.status).toBe(200);
      expect((res.body as { data: unknown }).data).toEqual(
        expect.objectContaining({ id: user.userId, role: 'admin', is_active: true, member_id: null }),
      );
      const stored = await storedUser(testApp, user.userId);
      expect(stored).toEqual(expect.objectContaining({ role: 'admin', tokenVersion: 2 }));
      expect(stored.updatedAt.getTime()).toBeGreaterThanOrEqual(stored.createdAt.getTime());
      const audit = (await auditRowsFor(testApp, user.userId)).at(-1)!;
      expect(audit).toEqual(
        expect.objectContaining({
          action: 'user.update',
          actorLabel: admin.email,
          beforeJson: JSON.stringify({ role: 'operator' }),
          afterJson: JSON.stringify({ role: 'admin' }),
          requestId: res.headers['x-request-id'],
        }),
      );
    });

    it('turns a user into a member only with a member_id, and unlinks it when it stops being one', async () => {
      const user = await createUser(testApp, { role: 'service' });
      await refusedWithoutChange(() => patch(user.userId, { role: 'member' }), 422, 'validation_failed');
      const { memberId } = await createTestMember(testApp);
      const linked = await patch(user.userId, { role: 'member', member_id: memberId });
      expect((linked.body as { data: unknown }).data).toEqual(
        expect.objectContaining({ role: 'member', member_id: memberId }),
      );
      const unlinked = await patch(user.userId, { role: 'operator' });
      expect((unlinked.body as { data: unknown }).data).toEqual(
        expect.objectContaining({ role: 'operator', member_id: null }),
      );
      expect(await storedUser(testApp, user.userId)).toEqual(
        expect.objectContaining({ memberId: null, tokenVersion: 3 }),
      );
      const audit = (await auditRowsFor(testApp, user.userId)).slice(-2);
      expect(audit.map((row) => [JSON.parse(row.beforeJson!), JSON.parse(row.afterJson!)])).toEqual([
        [
          { role: 'service', member_id: null },
          { role: 'member', member_id: memberId },
        ],
        [
          { role: 'member', member_id: memberId },
          { role: 'operator', member_id: null },
        ],
      ]);
    });

    it('treats a change to the current values as a no-op: no new version, no audit row', async () => {
      const user = await createUser(testApp, { role: 'operator' });
      const auditBefore = await auditRowsFor(testApp, user.userId);
      const res = await patch(user.userId, { role: 'operator', is_active: true });
      expect(res.status).toBe(200);
      expect(await storedUser(testApp, user.userId)).toEqual(expect.objectContaining({ tokenVersion: 1 }));
      expect(await auditRowsFor(testApp, user.userId)).toEqual(auditBefore);
    });

    it('never disables or demotes the last active admin (409 last_admin), but does once another exists', async () => {
      const admins = await dataSourceOf(testApp).getRepository(User).findBy({ role: 'admin', isActive: true });
      for (const other of admins.filter((a) => String(a.id) !== admin.userId)) {
        await patch(String(other.id), { role: 'operator' });
      }
      await refusedWithoutChange(() => patch(admin.userId, { is_active: false }), 409, 'last_admin');
      await refusedWithoutChange(() => patch(admin.userId, { role: 'operator' }), 409, 'last_admin');
      const second = await createUser(testApp, { role: 'admin' });
      expect((await patch(second.userId, { is_active: false })).status).toBe(200);
      await refusedWithoutChange(() => patch(admin.userId, { role: 'operator' }), 409, 'last_admin');
      expect((await patch(second.userId, { is_active: true })).status).toBe(200);
      expect((await patch(second.userId, { role: 'operator' })).status).toBe(200);
      expect(await storedUser(testApp, second.userId)).toEqual(
        expect.objectContaining({ role: 'operator', isActive: true }),
      );
    });

    it.each([
      ['an empty body', {}, ['']],
      ['an unknown role', { role: 'superuser' }, ['role']],
      ['a non-boolean is_active', { is_active: 'no' }, ['is_active']],
      ['a short password', { password: 'short' }, ['password']],
      ['a field that cannot be changed (email)', { email: 'x@example.test' }, ['email']],
      ['a null member_id', { member_id: null }, ['member_id']],
      ['a null password', { password: null }, ['password']],
      ['a null role', { role: null }, ['role']],
      ['a null is_active', { is_active: null }, ['is_active']],
      ['a member_id on a non-member', { member_id: '1' }, ['member_id']],
    ])('refuses %s with 422 and changes nothing', async (_name, body, fields) => {
      const user = await createUser(testApp, { role: 'operator' });
      const res = await refusedWithoutChange(() => patch(user.userId, body), 422, 'validation_failed');
      expect([...new Set((res.body as { errors: Array<{ field: string }> }).errors.map((e) => e.field))]).toEqual(
        fields,
      );
    });

    it('refuses query parameters on create and change (422), changing nothing', async () => {
      const user = await createUser(testApp, { role: 'operator' });
      await refusedWithoutChange(
        () =>
          api()
            .patch(`/api/v1/admin/users/${user.userId}?role=admin`)
            .set(bearer(admin.token))
            .send({ is_active: false }),
        422,
        'validation_failed',
      );
      await refusedWithoutChange(
        () =>
          api()
            .post('/api/v1/admin/users?notify=true')
            .set(bearer(admin.token))
            .send({ email: 'query.user@example.test', password: 'a-long-enough-password', role: 'operator' }),
        422,
        'validation_failed',
      );
    });

    it.each(['987654321', 'abc', '0', '99999999999999999999'])('answers 404 for user id %s', async (id) => {
      await refusedWithoutChange(() => patch(id, { role: 'operator' }), 404, 'not_found');
    });
  });

  it('keeps audit rows for every user the API created or changed', async () => {
    const rows = await dataSourceOf(testApp).getRepository(AuditLogEntry).find();
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      expect(`${row.beforeJson ?? ''}${row.afterJson ?? ''}`).not.toMatch(/argon2|password_hash|"password"/);
    }
  });
});
