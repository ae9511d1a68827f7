import request from 'supertest';
import { processTail, STATS } from '../analytics/helpers';
import { bearer, loginAs, type LoggedIn } from '../support/auth';
import { parsePrometheusText, sampleValue } from '../support/prometheus';
import { balanceOf, createConfig, createMember, historyOf, ledgerReport, sql } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';
import { waitForOperation } from '../jobs/helpers';
import { JobsClock } from '../../src/jobs/clock';
import { ResetScheduler } from '../../src/jobs/reset-scheduler.service';

const holdsOf = (memberId: string) => `/api/v1/quota/members/${memberId}/holds`;
const hold = (id: string, action?: 'commit' | 'release') => `/api/v1/quota/holds/${id}${action ? `/${action}` : ''}`;

async function heldOf(t: TestApp, memberId: string): Promise<number> {
  const [row] = await sql<{ quota_held: unknown }>(t, 'SELECT quota_held FROM members WHERE id = ?', [memberId]);
  return Number(row.quota_held);
}

describe('holds: reserve, then commit or release (contract §10)', () => {
  let t: TestApp;
  let service: LoggedIn;
  let otherService: LoggedIn;
  let admin: LoggedIn;
  let operator: LoggedIn;

  beforeAll(async () => {
    // The analytics tail is driven by the test; the expiry sweep runs every 200 ms.
    t = await startTestApp({
      env: {
        THROTTLE_LIMIT: '0',
        QUOTA_HOLD_EXPIRY_INTERVAL_MS: '200',
        QUOTA_ANALYTICS_INTERVAL_MS: '0',
        QUOTA_ANALYTICS_LAG_MS: '0',
        JOBS_RESET_TICK_MS: '3600000',
      },
    });
    service = await loginAs(t, 'service');
    otherService = await loginAs(t, 'service');
    admin = await loginAs(t, 'admin');
    operator = await loginAs(t, 'operator');
  });
  afterAll(async () => {
    await t?.close();
  });

  const make = (token: string, memberId: string, body: object, key?: string) => {
    const req = request(t.server).post(holdsOf(memberId)).set(bearer(token));
    return (key ? req.set('Idempotency-Key', key) : req).send(body);
  };
  const settle = (token: string, id: string, action: 'commit' | 'release', body?: object, key?: string) => {
    const req = request(t.server).post(hold(id, action)).set(bearer(token));
    const keyed = key ? req.set('Idempotency-Key', key) : req;
    return body === undefined ? keyed : keyed.send(body);
  };

  it('takes the units at once: no consume or other hold can spend them', async () => {
    const member = await createMember(t, { maxQuota: 50 });
    const made = await make(service.token, member.id, { amount: 30, note: 'job 7' });
    expect(made.status).toBe(201);
    expect(made.body.data).toEqual({
      hold_id: expect.stringMatching(/^[1-9]\d*$/),
      member_id: member.id,
      amount: 30,
      status: 'held',
      committed_amount: null,
      released_amount: null,
      note: 'job 7',
      created_at: expect.any(String),
      expires_at: expect.any(String),
      settled_at: null,
      balance: 20,
    });
    // ttl_seconds defaults to 300.
    const ttl = Date.parse(made.body.data.expires_at) - Date.parse(made.body.data.created_at);
    expect(ttl).toBe(300_000);
    expect(made.headers['x-quota-limit']).toBe('50');
    expect(made.headers['x-quota-remaining']).toBe('20');

    const consume = await request(t.server)
      .post(`/api/v1/quota/members/${member.id}/consume`)
      .set(bearer(service.token))
      .send({ amount: 21 });
    expect(consume.status).toBe(409);
    expect(consume.body).toMatchObject({ code: 'insufficient_quota', balance: 20 });
    const second = await make(service.token, member.id, { amount: 21 });
    expect(second.status).toBe(409);
    expect(second.body).toMatchObject({ code: 'insufficient_quota', balance: 20 });
    expect(second.headers['x-quota-remaining']).toBe('20');

    expect(await balanceOf(t, member.id)).toBe(20);
    expect(await heldOf(t, member.id)).toBe(30);
    const rows = await historyOf(t, member.id);
    expect(rows.map((r) => [r.reason, r.delta, r.balance_after])).toEqual([
      ['initial_grant', 50, 50],
      ['hold', -30, 20],
    ]);
    expect((await ledgerReport(t, member.id)).mismatches).toEqual([]);
  });

  it('commit takes part of the hold and gives the rest back at once; the hold is then settled', async () => {
    const member = await createMember(t, { maxQuota: 50 });
    const made = await make(service.token, member.id, { amount: 30 });
    const id = made.body.data.hold_id as string;
    const committed = await settle(service.token, id, 'commit', { amount: 12 });
    expect(committed.status).toBe(200);
    expect(committed.body.data).toMatchObject({
      hold_id: id,
      status: 'committed',
      committed_amount: 12,
      released_amount: 18,
      balance: 38,
      settled_at: expect.any(String),
    });
    expect(committed.headers['x-quota-remaining']).toBe('38');
    expect(await balanceOf(t, member.id)).toBe(38);
    expect(await heldOf(t, member.id)).toBe(0);
    const rows = await sql<{ reason: string; delta: number; hold_id: string | number | null }>(
      t,
      'SELECT reason, delta, hold_id FROM member_quota_history WHERE member_id = ? ORDER BY id',
      [member.id],
    );
    expect(rows.map((r) => [r.reason, Number(r.delta), r.hold_id === null ? null : String(r.hold_id)])).toEqual([
      ['initial_grant', 50, null],
      ['hold', -30, id],
      ['hold_release', 30, id],
      ['consumption', -12, id],
    ]);

    for (const action of ['commit', 'release'] as const) {
      const again = await settle(service.token, id, action, action === 'commit' ? {} : undefined);
      expect(again.status).toBe(409);
      expect(again.body.code).toBe('hold_settled');
    }
    expect(await balanceOf(t, member.id)).toBe(38);
    expect((await ledgerReport(t, member.id)).mismatches).toEqual([]);
  });

  it('commit without an amount takes the whole hold, also with an empty body and a JSON content type', async () => {
    const member = await createMember(t, { maxQuota: 10 });
    const made = await make(service.token, member.id, { amount: 4 });
    const res = await request(t.server)
      .post(hold(made.body.data.hold_id, 'commit'))
      .set(bearer(service.token))
      .set('Content-Type', 'application/json');
    expect(res.status).toBe(200);
    expect(res.body.data).toMatchObject({ status: 'committed', committed_amount: 4, released_amount: 0, balance: 6 });
  });

  it('commit of 0 gives everything back; release gives everything back', async () => {
    const member = await createMember(t, { maxQuota: 10 });
    const a = await make(service.token, member.id, { amount: 3 });
    const b = await make(service.token, member.id, { amount: 5 });
    expect(b.body.data.balance).toBe(2);
    const zero = await settle(service.token, a.body.data.hold_id, 'commit', { amount: 0 });
    expect(zero.body.data).toMatchObject({ status: 'committed', committed_amount: 0, released_amount: 3, balance: 5 });
    const released = await settle(service.token, b.body.data.hold_id, 'release');
    expect(released.status).toBe(200);
    expect(released.body.data).toMatchObject({
      status: 'released',
      committed_amount: 0,
      released_amount: 5,
      balance: 10,
    });
    expect(await balanceOf(t, member.id)).toBe(10);
    expect(await heldOf(t, member.id)).toBe(0);
    expect((await ledgerReport(t, member.id)).mismatches).toEqual([]);
  });

  it('refuses a hold for an inactive member or config, as consume does, and writes nothing', async () => {
    const config = await createConfig(t, { maxQuota: 10 });
    const member = await createMember(t, { membershipType: config.membershipType });
    await sql(t, 'UPDATE members SET is_active = 0 WHERE id = ?', [member.id]);
    const inactive = await make(service.token, member.id, { amount: 1 });
    expect(inactive.status).toBe(409);
    expect(inactive.body.code).toBe('member_inactive');
    await sql(t, 'UPDATE members SET is_active = 1 WHERE id = ?', [member.id]);
    await sql(t, 'UPDATE member_quota_config SET is_active = 0 WHERE id = ?', [config.id]);
    const configOff = await make(service.token, member.id, { amount: 1 });
    expect(configOff.status).toBe(409);
    expect(configOff.body.code).toBe('config_inactive');
    expect(await sql(t, 'SELECT id FROM quota_holds WHERE member_id = ?', [member.id])).toEqual([]);
    expect((await historyOf(t, member.id)).map((r) => r.reason)).toEqual(['initial_grant']);
  });

  it('Idempotency-Key on create, commit and release: the same request is answered once', async () => {
    const member = await createMember(t, { maxQuota: 20 });
    const first = await make(service.token, member.id, { amount: 5 }, 'hold-1');
    const replay = await make(service.token, member.id, { amount: 5 }, 'hold-1');
    expect(replay.status).toBe(201);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.body).toEqual(first.body);
    const mismatch = await make(service.token, member.id, { amount: 6 }, 'hold-1');
    expect(mismatch.status).toBe(422);
    expect(mismatch.body.code).toBe('idempotency_key_mismatch');
    // Keys are per caller: another service's same key is its own request.
    const others = await make(otherService.token, member.id, { amount: 5 }, 'hold-1');
    expect(others.status).toBe(201);
    expect(others.body.data.hold_id).not.toBe(first.body.data.hold_id);
    expect(await sql(t, 'SELECT id FROM quota_holds WHERE member_id = ?', [member.id])).toHaveLength(2);

    const id = first.body.data.hold_id as string;
    const commit = await settle(service.token, id, 'commit', { amount: 2 }, 'commit-1');
    const commitReplay = await settle(service.token, id, 'commit', { amount: 2 }, 'commit-1');
    expect(commitReplay.status).toBe(200);
    expect(commitReplay.headers['idempotent-replayed']).toBe('true');
    expect(commitReplay.body).toEqual(commit.body);
    expect((await settle(service.token, id, 'commit', { amount: 3 }, 'commit-1')).body.code).toBe(
      'idempotency_key_mismatch',
    );
    // Replaying the creation still answers what the creation said.
    expect((await make(service.token, member.id, { amount: 5 }, 'hold-1')).body).toEqual(first.body);

    const otherId = others.body.data.hold_id as string;
    const release = await settle(otherService.token, otherId, 'release', undefined, 'release-1');
    const releaseReplay = await settle(otherService.token, otherId, 'release', undefined, 'release-1');
    expect(releaseReplay.headers['idempotent-replayed']).toBe('true');
    expect(releaseReplay.body).toEqual(release.body);

    expect(await balanceOf(t, member.id)).toBe(18);
    const reasons = (await historyOf(t, member.id)).map((r) => r.reason);
    expect(reasons).toEqual(['initial_grant', 'hold', 'hold', 'hold_release', 'consumption', 'hold_release']);
    expect((await ledgerReport(t, member.id)).mismatches).toEqual([]);
  });

  it('only the maker and admins settle; others are told the hold does not exist', async () => {
    const member = await createMember(t, { maxQuota: 20 });
    const memberUser = await loginAs(t, 'member', { memberId: member.id });
    const strangerMember = await loginAs(t, 'member');
    const made = await make(service.token, member.id, { amount: 4 });
    const id = made.body.data.hold_id as string;

    // Reading: the maker, admins and operators; the member whose quota it holds; nobody else.
    for (const reader of [service, admin, operator, memberUser]) {
      const res = await request(t.server).get(hold(id)).set(bearer(reader.token));
      expect({ role: reader.role, status: res.status }).toEqual({ role: reader.role, status: 200 });
      expect(res.body.data).toMatchObject({ hold_id: id, status: 'held', amount: 4 });
    }
    for (const outsider of [otherService, strangerMember]) {
      const res = await request(t.server).get(hold(id)).set(bearer(outsider.token));
      expect(res.status).toBe(404);
    }
    // Settling: not another service, not an operator, not the member (it did not make it).
    for (const outsider of [otherService, operator, memberUser, strangerMember]) {
      for (const action of ['commit', 'release'] as const) {
        const res = await settle(outsider.token, id, action, action === 'commit' ? {} : undefined);
        expect({ role: outsider.role, action, status: res.status, code: res.body.code }).toEqual({
          role: outsider.role,
          action,
          status: 404,
          code: 'not_found',
        });
      }
    }
    expect(await balanceOf(t, member.id)).toBe(16);
    const byAdmin = await settle(admin.token, id, 'release');
    expect(byAdmin.status).toBe(200);
    expect(byAdmin.body.data).toMatchObject({ status: 'released', balance: 20 });
  });

  it('members hold, list and settle their own quota through /quota/me/holds', async () => {
    const member = await createMember(t, { maxQuota: 10 });
    const user = await loginAs(t, 'member', { memberId: member.id });
    const made = await request(t.server).post('/api/v1/quota/me/holds').set(bearer(user.token)).send({ amount: 3 });
    expect(made.status).toBe(201);
    expect(made.body.data).toMatchObject({ member_id: member.id, amount: 3, balance: 7 });
    // A member cannot use the service route, even for its own member.
    const viaService = await make(user.token, member.id, { amount: 1 });
    expect(viaService.status).toBe(403);
    const byService = await make(service.token, member.id, { amount: 2 });

    const list = await request(t.server).get('/api/v1/quota/me/holds').set(bearer(user.token));
    expect(list.status).toBe(200);
    expect(list.body.data.map((h: { hold_id: string }) => h.hold_id)).toEqual([
      byService.body.data.hold_id,
      made.body.data.hold_id,
    ]);
    expect(list.body.meta).toEqual({ limit: 50, next_cursor: null });

    const committed = await settle(user.token, made.body.data.hold_id, 'commit', { amount: 1 });
    expect(committed.status).toBe(200);
    expect(committed.body.data).toMatchObject({ status: 'committed', committed_amount: 1, balance: 7 });
    const open = await request(t.server).get('/api/v1/quota/me/holds?status=held').set(bearer(user.token));
    expect(open.body.data.map((h: { hold_id: string }) => h.hold_id)).toEqual([byService.body.data.hold_id]);

    // Another member's token sees none of these.
    const stranger = await loginAs(t, 'member');
    const theirs = await request(t.server).get('/api/v1/quota/me/holds').set(bearer(stranger.token));
    expect(theirs.body.data).toEqual([]);
  });

  it('operators list holds, filtered and paginated', async () => {
    const member = await createMember(t, { maxQuota: 30 });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await make(service.token, member.id, { amount: 1 })).body.data.hold_id);
    await settle(service.token, ids[0], 'release');
    await settle(service.token, ids[1], 'commit', {});

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const url: string = `/api/v1/admin/quota/holds?member_id=${member.id}&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const page = await request(t.server).get(url).set(bearer(operator.token));
      expect(page.status).toBe(200);
      expect(page.body.data.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.data.map((h: { hold_id: string }) => h.hold_id));
      cursor = page.body.meta.next_cursor;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());

    const byStatus = async (status: string) =>
      (
        await request(t.server)
          .get(`/api/v1/admin/quota/holds?member_id=${member.id}&status=${status}`)
          .set(bearer(admin.token))
      ).body.data.map((h: { hold_id: string }) => h.hold_id);
    expect(await byStatus('released')).toEqual([ids[0]]);
    expect(await byStatus('committed')).toEqual([ids[1]]);
    expect(await byStatus('held')).toEqual([ids[4], ids[3], ids[2]]);
    expect(await byStatus('expired')).toEqual([]);
  });

  it('an unsettled hold gives its units back by itself after its ttl, exactly once; settling it then is hold_expired', async () => {
    const member = await createMember(t, { maxQuota: 10 });
    const made = await make(service.token, member.id, { amount: 4, ttl_seconds: 1 });
    expect(made.status).toBe(201);
    const id = made.body.data.hold_id as string;
    const deadline = Date.now() + 5000;
    while ((await balanceOf(t, member.id)) !== 10 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    expect(await balanceOf(t, member.id)).toBe(10);
    // Several more sweeps run; nothing is given back twice.
    await new Promise((r) => setTimeout(r, 700));
    const read = await request(t.server).get(hold(id)).set(bearer(service.token));
    expect(read.body.data).toMatchObject({ status: 'expired', released_amount: 4, committed_amount: 0 });
    expect(read.body.data.settled_at).not.toBeNull();
    const late = await settle(service.token, id, 'commit', {});
    expect(late.status).toBe(409);
    expect(late.body.code).toBe('hold_expired');
    const rows = await historyOf(t, member.id);
    expect(rows.map((r) => [r.reason, r.delta, r.actor])).toEqual([
      ['initial_grant', 10, 'system'],
      ['hold', -4, service.userId],
      ['hold_release', 4, 'system'],
    ]);
    expect(await heldOf(t, member.id)).toBe(0);
  });

  it('a periodic reset sets the balance to max_quota minus the units still held', async () => {
    const config = await createConfig(t, { maxQuota: 50, resetPeriod: 'daily' });
    const member = await createMember(t, { membershipType: config.membershipType });
    await request(t.server)
      .post(`/api/v1/quota/members/${member.id}/consume`)
      .set(bearer(service.token))
      .send({ amount: 15 })
      .expect(200);
    const open = await make(service.token, member.id, { amount: 20, ttl_seconds: 3600 });
    expect(open.body.data.balance).toBe(15);

    const clock = jest.spyOn(t.app.get(JobsClock), 'now').mockImplementation(() => new Date(Date.now() + 86_400_000));
    try {
      const created = await t.app.get(ResetScheduler).tick();
      for (const operationId of created) await waitForOperation(t, admin.token, operationId);
    } finally {
      clock.mockRestore();
    }
    expect(await balanceOf(t, member.id)).toBe(30);
    expect(await heldOf(t, member.id)).toBe(20);
    const released = await settle(service.token, open.body.data.hold_id, 'release');
    expect(released.body.data.balance).toBe(50);
    const reasons = (await historyOf(t, member.id)).map((r) => [r.reason, r.delta]);
    expect(reasons).toEqual([
      ['initial_grant', 50],
      ['consumption', -15],
      ['hold', -20],
      ['periodic_reset', 15],
      ['hold_release', 20],
    ]);
    expect((await ledgerReport(t, member.id)).mismatches).toEqual([]);
  });

  it('stats count committed units as consumption; released and expired units are not consumption', async () => {
    const config = await createConfig(t, { maxQuota: 100 });
    const member = await createMember(t, { membershipType: config.membershipType });
    const a = await make(service.token, member.id, { amount: 10 });
    const b = await make(service.token, member.id, { amount: 7 });
    await settle(service.token, a.body.data.hold_id, 'commit', { amount: 6 });
    await settle(service.token, b.body.data.hold_id, 'release');
    await processTail(t);
    const stats = await request(t.server)
      .get(`${STATS}?membership_type=${config.membershipType}`)
      .set(bearer(admin.token));
    expect(stats.status).toBe(200);
    const [type] = stats.body.data.membership_types;
    expect(type.membership_type).toBe(config.membershipType);
    expect(type.consumption).toEqual({ count: 1, units: 6 });
    expect(type.by_reason.hold).toMatchObject({ count: 2, units: 17 });
    expect(type.by_reason.hold_release).toMatchObject({ count: 2, units: 17 });
  });

  async function scrape() {
    const res = await request(t.server).get('/metrics').expect(200);
    const { samples } = parsePrometheusText(res.text);
    return {
      value: (name: string, labels: Record<string, string> = {}) => sampleValue(samples, name, labels) ?? 0,
    };
  }

  it('metrics count holds made and settled, and the units held', async () => {
    const member = await createMember(t, { maxQuota: 10 });
    const before = await scrape();
    const made = await make(service.token, member.id, { amount: 3, ttl_seconds: 3600 });
    await make(service.token, member.id, { amount: 2, ttl_seconds: 3600 }).then((r) =>
      settle(service.token, r.body.data.hold_id, 'release'),
    );
    await new Promise((r) => setTimeout(r, 500));
    const after = await scrape();
    expect(after.value('quota_holds_created_total') - before.value('quota_holds_created_total')).toBe(2);
    expect(
      after.value('quota_holds_settled_total', { outcome: 'released' }) -
        before.value('quota_holds_settled_total', { outcome: 'released' }),
    ).toBe(1);
    const [open] = await sql<{ units: unknown }>(
      t,
      "SELECT COALESCE(SUM(amount), 0) AS units FROM quota_holds WHERE status = 'held'",
    );
    expect(after.value('quota_units_held')).toBe(Number(open.units));
    await settle(service.token, made.body.data.hold_id, 'release');
  });
});

describe('holds past their time before the sweep has run', () => {
  let t: TestApp;
  let service: LoggedIn;

  beforeAll(async () => {
    // The sweep runs at start-up, then not for a minute: the request path has to handle lapsed holds.
    t = await startTestApp({ env: { THROTTLE_LIMIT: '0', QUOTA_HOLD_EXPIRY_INTERVAL_MS: '60000' } });
    service = await loginAs(t, 'service');
  });
  afterAll(async () => {
    await t?.close();
  });

  it('shows the hold expired at once, refuses to settle it, and gives its units back then', async () => {
    const member = await createMember(t, { maxQuota: 10 });
    const made = await request(t.server)
      .post(holdsOf(member.id))
      .set(bearer(service.token))
      .send({ amount: 6, ttl_seconds: 1 });
    const id = made.body.data.hold_id as string;
    await new Promise((r) => setTimeout(r, 1100));
    const read = await request(t.server).get(hold(id)).set(bearer(service.token));
    expect(read.body.data).toMatchObject({ status: 'expired', committed_amount: 0, released_amount: 6 });
    expect(await balanceOf(t, member.id)).toBe(4);
    const list = await request(t.server)
      .get(`/api/v1/admin/quota/holds?member_id=${member.id}&status=expired`)
      .set(bearer((await loginAs(t, 'operator')).token));
    expect(list.body.data.map((h: { hold_id: string }) => h.hold_id)).toEqual([id]);

    const release = await request(t.server).post(hold(id, 'release')).set(bearer(service.token));
    expect(release.status).toBe(409);
    expect(release.body.code).toBe('hold_expired');
    expect(await balanceOf(t, member.id)).toBe(10);
    const again = await request(t.server).post(hold(id, 'commit')).set(bearer(service.token)).send({});
    expect(again.body.code).toBe('hold_expired');
    expect((await historyOf(t, member.id)).map((r) => r.reason)).toEqual(['initial_grant', 'hold', 'hold_release']);
  });
});
