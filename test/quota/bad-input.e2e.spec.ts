import request from 'supertest';
import { bearer, loginAs } from '../support/auth';
import { createConfig, createMember, quotaSnapshot } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';
import { expectProblem } from '../auth/helpers';

type Method = 'get' | 'post' | 'patch' | 'delete';

interface Case {
  readonly name: string;
  readonly method: Method;
  readonly path: string;
  readonly body?: unknown;
  readonly raw?: string;
  readonly status: number;
  readonly code: string;
  /** A field the problem's `errors` must name (validation failures). */
  readonly field?: string;
}

const LONG = (n: number) => 'x'.repeat(n);

/**
 * The bad-input catalogue: every endpoint of the quota module refuses malformed requests with
 * problem+json, and a refused request changes nothing in the database (audit log included).
 */
describe('bad input is refused and changes nothing', () => {
  let t: TestApp;
  let admin: string;
  let service: string;
  let memberToken: string;
  let configId: string;
  let memberId: string;
  let usedType: string;
  let holdId: string;

  beforeAll(async () => {
    t = await startTestApp({ env: { THROTTLE_LIMIT: '0' } });
    admin = (await loginAs(t, 'admin')).token;
    service = (await loginAs(t, 'service')).token;
    const config = await createConfig(t, { maxQuota: 50 });
    configId = config.id;
    usedType = config.membershipType;
    const member = await createMember(t, { membershipType: config.membershipType });
    memberId = member.id;
    memberToken = (await loginAs(t, 'member', { memberId })).token;
    const hold = await request(t.server)
      .post(`/api/v1/quota/members/${memberId}/holds`)
      .set(bearer(service))
      .send({ amount: 5, ttl_seconds: 86_400 });
    expect(hold.status).toBe(201);
    holdId = hold.body.data.hold_id;
  });
  afterAll(async () => {
    await t?.close();
  });

  const run = async (c: Case, token: string) => {
    let req = request(t.server)[c.method](c.path).set(bearer(token));
    if (c.raw !== undefined) req = req.set('Content-Type', 'application/json').send(c.raw);
    else if (c.body !== undefined) req = req.send(c.body as object);
    const res = await req;
    expect({ case: c.name, status: res.status, code: res.body?.code }).toEqual({
      case: c.name,
      status: c.status,
      code: c.code,
    });
    expectProblem(res, c.status, c.code);
    if (c.field) {
      expect({ case: c.name, fields: res.body.errors.map((e: { field: string }) => e.field) }).toEqual({
        case: c.name,
        fields: expect.arrayContaining([c.field]),
      });
    }
  };

  const catalogue = (): Record<string, { token: () => string; cases: Case[] }> => {
    const configs = '/api/v1/admin/quota/configs';
    const members = '/api/v1/admin/members';
    const consume = `/api/v1/quota/members/${memberId}/consume`;
    const refund = `/api/v1/quota/members/${memberId}/refund`;
    const adjust = `/api/v1/admin/quota/members/${memberId}/adjust`;
    const holds = `/api/v1/quota/members/${memberId}/holds`;
    const commit = (id = holdId) => `/api/v1/quota/holds/${id}/commit`;
    const release = (id = holdId) => `/api/v1/quota/holds/${id}/release`;
    const v = (name: string, method: Method, path: string, body: unknown, field?: string): Case => ({
      name,
      method,
      path,
      body,
      status: 422,
      code: 'validation_failed',
      field,
    });
    const amountCases = (path: string): Case[] => [
      v('amount missing', 'post', path, {}, 'amount'),
      v('amount 0', 'post', path, { amount: 0 }, 'amount'),
      v('amount negative', 'post', path, { amount: -5 }, 'amount'),
      v('amount fractional', 'post', path, { amount: 1.5 }, 'amount'),
      v('amount string', 'post', path, { amount: '5' }, 'amount'),
      v('amount null', 'post', path, { amount: null }, 'amount'),
      v('amount out of range', 'post', path, { amount: 2_147_483_648 }, 'amount'),
      v('amount huge', 'post', path, { amount: 1e300 }, 'amount'),
      v('note too long', 'post', path, { amount: 1, note: LONG(501) }, 'note'),
      v('note not a string', 'post', path, { amount: 1, note: 5 }, 'note'),
      v('unknown field', 'post', path, { amount: 1, member_id: '1' }, 'member_id'),
      v('body is an array', 'post', path, [{ amount: 1 }]),
      { name: 'malformed JSON', method: 'post', path, raw: '{"amount": 1', status: 400, code: 'malformed_json' },
    ];
    return {
      configs: {
        token: () => admin,
        cases: [
          v('empty body', 'post', configs, {}, 'membership_type'),
          v('slug with capitals', 'post', configs, { membership_type: 'Regular', max_quota: 1 }, 'membership_type'),
          v('slug starting with -', 'post', configs, { membership_type: '-x', max_quota: 1 }, 'membership_type'),
          v('slug too long', 'post', configs, { membership_type: 'a'.repeat(33), max_quota: 1 }, 'membership_type'),
          v('slug not a string', 'post', configs, { membership_type: 5, max_quota: 1 }, 'membership_type'),
          v('slug empty', 'post', configs, { membership_type: '', max_quota: 1 }, 'membership_type'),
          v('max_quota negative', 'post', configs, { membership_type: 'ok', max_quota: -1 }, 'max_quota'),
          v('max_quota fractional', 'post', configs, { membership_type: 'ok', max_quota: 1.5 }, 'max_quota'),
          v('max_quota string', 'post', configs, { membership_type: 'ok', max_quota: '50' }, 'max_quota'),
          v(
            'max_quota out of range',
            'post',
            configs,
            { membership_type: 'ok', max_quota: 2_147_483_648 },
            'max_quota',
          ),
          v('max_quota null', 'post', configs, { membership_type: 'ok', max_quota: null }, 'max_quota'),
          v(
            'reset_period unknown',
            'post',
            configs,
            { membership_type: 'ok', max_quota: 1, reset_period: 'yearly' },
            'reset_period',
          ),
          v(
            'is_active string',
            'post',
            configs,
            { membership_type: 'ok', max_quota: 1, is_active: 'yes' },
            'is_active',
          ),
          v(
            'description too long',
            'post',
            configs,
            { membership_type: 'ok', max_quota: 1, description: LONG(501) },
            'description',
          ),
          v('unknown field id', 'post', configs, { membership_type: 'ok', max_quota: 1, id: '1' }, 'id'),
          v(
            'unknown field created_at',
            'post',
            configs,
            { membership_type: 'ok', max_quota: 1, created_at: 'x' },
            'created_at',
          ),
          { name: 'malformed JSON', method: 'post', path: configs, raw: '{', status: 400, code: 'malformed_json' },
          v('list: is_active not a boolean', 'get', `${configs}?is_active=maybe`, undefined, 'is_active'),
          v('list: unknown query parameter', 'get', `${configs}?sort=id`, undefined, 'sort'),
          v('patch: max_quota negative', 'patch', `${configs}/${configId}`, { max_quota: -1 }, 'max_quota'),
          v(
            'patch: membership_type cannot change',
            'patch',
            `${configs}/${configId}`,
            { membership_type: 'other' },
            'membership_type',
          ),
          v('patch: apply unknown', 'patch', `${configs}/${configId}`, { apply: 'sometimes' }, 'apply'),
          v('patch: is_active null', 'patch', `${configs}/${configId}`, { is_active: null }, 'is_active'),
          v('patch: max_quota null', 'patch', `${configs}/${configId}`, { max_quota: null }, 'max_quota'),
          {
            name: 'patch: unknown id',
            method: 'patch',
            path: `${configs}/987654321`,
            body: { max_quota: 1 },
            status: 404,
            code: 'not_found',
          },
          {
            name: 'patch: malformed id',
            method: 'patch',
            path: `${configs}/1.5`,
            body: { max_quota: 1 },
            status: 404,
            code: 'not_found',
          },
          { name: 'delete: malformed id', method: 'delete', path: `${configs}/abc`, status: 404, code: 'not_found' },
          {
            name: 'delete: unknown id',
            method: 'delete',
            path: `${configs}/987654321`,
            status: 404,
            code: 'not_found',
          },
          { name: 'get: negative id', method: 'get', path: `${configs}/-1`, status: 404, code: 'not_found' },
          {
            name: 'delete: in use',
            method: 'delete',
            path: `${configs}/${configId}`,
            status: 409,
            code: 'config_in_use',
          },
          {
            name: 'duplicate type',
            method: 'post',
            path: configs,
            body: { membership_type: usedType, max_quota: 1 },
            status: 409,
            code: 'duplicate_membership_type',
          },
        ],
      },
      members: {
        token: () => admin,
        cases: [
          v('empty body', 'post', members, {}, 'external_id'),
          v('external_id empty', 'post', members, { external_id: '', membership_type: usedType }, 'external_id'),
          v(
            'external_id with space',
            'post',
            members,
            { external_id: 'a b', membership_type: usedType },
            'external_id',
          ),
          v(
            'external_id too long',
            'post',
            members,
            { external_id: LONG(192), membership_type: usedType },
            'external_id',
          ),
          v('external_id number', 'post', members, { external_id: 5, membership_type: usedType }, 'external_id'),
          v(
            'membership_type bad slug',
            'post',
            members,
            { external_id: 'e1', membership_type: 'A B' },
            'membership_type',
          ),
          v(
            'membership_type unknown',
            'post',
            members,
            { external_id: 'e1', membership_type: 'unknown-type' },
            'membership_type',
          ),
          v(
            'initial_quota negative',
            'post',
            members,
            { external_id: 'e1', membership_type: usedType, initial_quota: -1 },
            'initial_quota',
          ),
          v(
            'initial_quota fractional',
            'post',
            members,
            { external_id: 'e1', membership_type: usedType, initial_quota: 0.5 },
            'initial_quota',
          ),
          v(
            'initial_quota string',
            'post',
            members,
            { external_id: 'e1', membership_type: usedType, initial_quota: '5' },
            'initial_quota',
          ),
          v(
            'initial_quota out of range',
            'post',
            members,
            { external_id: 'e1', membership_type: usedType, initial_quota: 2_147_483_648 },
            'initial_quota',
          ),
          v(
            'quota_balance is not assignable',
            'post',
            members,
            { external_id: 'e1', membership_type: usedType, quota_balance: 5 },
            'quota_balance',
          ),
          v('list: page 0', 'get', `${members}?page=0`, undefined, 'page'),
          v('list: per_page 101', 'get', `${members}?per_page=101`, undefined, 'per_page'),
          v('list: page not a number', 'get', `${members}?page=abc`, undefined, 'page'),
          v('list: page fractional', 'get', `${members}?page=1.5`, undefined, 'page'),
          v('list: bad membership_type', 'get', `${members}?membership_type=BAD`, undefined, 'membership_type'),
          v('list: unknown parameter', 'get', `${members}?external_id=x`, undefined, 'external_id'),
          v(
            'patch: quota_balance not assignable',
            'patch',
            `${members}/${memberId}`,
            { quota_balance: 5 },
            'quota_balance',
          ),
          v(
            'patch: membership_type null',
            'patch',
            `${members}/${memberId}`,
            { membership_type: null },
            'membership_type',
          ),
          v('patch: is_active string', 'patch', `${members}/${memberId}`, { is_active: 'true' }, 'is_active'),
          v(
            'patch: external_id not changeable',
            'patch',
            `${members}/${memberId}`,
            { external_id: 'new' },
            'external_id',
          ),
          v(
            'patch: unknown type',
            'patch',
            `${members}/${memberId}`,
            { membership_type: 'unknown-type' },
            'membership_type',
          ),
          {
            name: 'patch: unknown id',
            method: 'patch',
            path: `${members}/987654321`,
            body: { is_active: false },
            status: 404,
            code: 'not_found',
          },
          { name: 'get: malformed id', method: 'get', path: `${members}/12abc`, status: 404, code: 'not_found' },
          v('batch: not a list', 'post', `${members}/batch`, { members: {} }, 'members'),
          v('batch: unknown field', 'post', `${members}/batch`, { members: [], extra: true }, 'extra'),
        ],
      },
      consumption: {
        token: () => service,
        cases: [
          ...amountCases(consume),
          ...amountCases(refund),
          {
            name: 'consume: unknown member',
            method: 'post',
            path: '/api/v1/quota/members/987654321/consume',
            body: { amount: 1 },
            status: 404,
            code: 'not_found',
          },
          {
            name: 'consume: malformed id',
            method: 'post',
            path: '/api/v1/quota/members/x/consume',
            body: { amount: 1 },
            status: 404,
            code: 'not_found',
          },
          {
            name: 'refund: unknown member',
            method: 'post',
            path: '/api/v1/quota/members/987654321/refund',
            body: { amount: 1 },
            status: 404,
            code: 'not_found',
          },
          {
            name: 'consume: insufficient',
            method: 'post',
            path: consume,
            body: { amount: 51 },
            status: 409,
            code: 'insufficient_quota',
          },
          v(
            'balance: unknown query parameter',
            'get',
            `/api/v1/quota/members/${memberId}?verbose=1`,
            undefined,
            'verbose',
          ),
        ],
      },
      own: {
        token: () => memberToken,
        cases: [...amountCases('/api/v1/quota/me/consume')],
      },
      adjust: {
        token: () => admin,
        cases: [
          v('neither delta nor new_quota', 'post', adjust, {}, 'delta'),
          v('both delta and new_quota', 'post', adjust, { delta: 1, new_quota: 1 }, 'delta'),
          v('delta fractional', 'post', adjust, { delta: 0.5 }, 'delta'),
          v('delta string', 'post', adjust, { delta: '-1' }, 'delta'),
          v('delta out of range', 'post', adjust, { delta: 3_000_000_000 }, 'delta'),
          v('new_quota negative', 'post', adjust, { new_quota: -1 }, 'new_quota'),
          v('reason unknown', 'post', adjust, { delta: 1, reason: 'because' }, 'reason'),
          v('note too long', 'post', adjust, { delta: 1, note: LONG(501) }, 'note'),
          v('unknown field', 'post', adjust, { delta: 1, balance: 5 }, 'balance'),
          {
            name: 'result negative',
            method: 'post',
            path: adjust,
            body: { delta: -51 },
            status: 422,
            code: 'negative_balance',
          },
          {
            name: 'unknown member',
            method: 'post',
            path: '/api/v1/admin/quota/members/987654321/adjust',
            body: { delta: 1 },
            status: 404,
            code: 'not_found',
          },
        ],
      },
      holds: {
        token: () => service,
        cases: [
          ...amountCases(holds),
          v('ttl_seconds 0', 'post', holds, { amount: 1, ttl_seconds: 0 }, 'ttl_seconds'),
          v('ttl_seconds above a day', 'post', holds, { amount: 1, ttl_seconds: 86_401 }, 'ttl_seconds'),
          v('ttl_seconds fractional', 'post', holds, { amount: 1, ttl_seconds: 1.5 }, 'ttl_seconds'),
          v('ttl_seconds string', 'post', holds, { amount: 1, ttl_seconds: '60' }, 'ttl_seconds'),
          v('ttl_seconds null', 'post', holds, { amount: 1, ttl_seconds: null }, 'ttl_seconds'),
          {
            name: 'hold: unknown member',
            method: 'post',
            path: '/api/v1/quota/members/987654321/holds',
            body: { amount: 1 },
            status: 404,
            code: 'not_found',
          },
          {
            name: 'hold: malformed member id',
            method: 'post',
            path: '/api/v1/quota/members/x/holds',
            body: { amount: 1 },
            status: 404,
            code: 'not_found',
          },
          // 50 less the open hold's 5.
          {
            name: 'hold: insufficient',
            method: 'post',
            path: holds,
            body: { amount: 46 },
            status: 409,
            code: 'insufficient_quota',
          },
          v('commit: more than the hold', 'post', commit(), { amount: 6 }, 'amount'),
          v('commit: negative', 'post', commit(), { amount: -1 }, 'amount'),
          v('commit: fractional', 'post', commit(), { amount: 0.5 }, 'amount'),
          v('commit: string', 'post', commit(), { amount: '1' }, 'amount'),
          v('commit: null', 'post', commit(), { amount: null }, 'amount'),
          v('commit: unknown field', 'post', commit(), { amount: 1, member_id: memberId }, 'member_id'),
          v('commit: body is an array', 'post', commit(), [{ amount: 1 }]),
          {
            name: 'commit: malformed JSON',
            method: 'post',
            path: commit(),
            raw: '{"amount"',
            status: 400,
            code: 'malformed_json',
          },
          {
            name: 'commit: unknown hold',
            method: 'post',
            path: commit('987654321'),
            body: {},
            status: 404,
            code: 'not_found',
          },
          {
            name: 'commit: malformed hold id',
            method: 'post',
            path: commit('1e3'),
            body: {},
            status: 404,
            code: 'not_found',
          },
          { name: 'release: unknown hold', method: 'post', path: release('987654321'), status: 404, code: 'not_found' },
          { name: 'release: malformed hold id', method: 'post', path: release('-4'), status: 404, code: 'not_found' },
          v('release: unknown query parameter', 'post', `${release()}?force=true`, undefined, 'force'),
          {
            name: 'get: unknown hold',
            method: 'get',
            path: '/api/v1/quota/holds/987654321',
            status: 404,
            code: 'not_found',
          },
        ],
      },
      'own holds': {
        token: () => memberToken,
        cases: [
          ...amountCases('/api/v1/quota/me/holds'),
          v('list: status unknown', 'get', '/api/v1/quota/me/holds?status=open', undefined, 'status'),
          v('list: limit 0', 'get', '/api/v1/quota/me/holds?limit=0', undefined, 'limit'),
          v('list: unknown query parameter', 'get', '/api/v1/quota/me/holds?member_id=1', undefined, 'member_id'),
          // Holds of its own member made by another caller: seen, but settled only by their maker.
          {
            name: 'member: commit a hold it did not make',
            method: 'post',
            path: commit(),
            body: {},
            status: 404,
            code: 'not_found',
          },
        ],
      },
      'holds list': {
        token: () => admin,
        cases: [
          v('status unknown', 'get', '/api/v1/admin/quota/holds?status=pending', undefined, 'status'),
          v('member_id not an id', 'get', '/api/v1/admin/quota/holds?member_id=abc', undefined, 'member_id'),
          v('limit above 500', 'get', '/api/v1/admin/quota/holds?limit=501', undefined, 'limit'),
          v('limit not a number', 'get', '/api/v1/admin/quota/holds?limit=ten', undefined, 'limit'),
          v('cursor not a cursor', 'get', '/api/v1/admin/quota/holds?cursor=aGk', undefined, 'cursor'),
          v('cursor with bad characters', 'get', '/api/v1/admin/quota/holds?cursor=a%2Bb', undefined, 'cursor'),
          v('unknown query parameter', 'get', '/api/v1/admin/quota/holds?sort=id', undefined, 'sort'),
        ],
      },
    };
  };

  it.each(['configs', 'members', 'consumption', 'own', 'adjust', 'holds', 'own holds', 'holds list'])(
    '%s',
    async (group) => {
      const { token, cases } = catalogue()[group];
      const before = await quotaSnapshot(t);
      for (const c of cases) await run(c, token());
      expect(await quotaSnapshot(t)).toEqual(before);
    },
  );

  it('a bad Idempotency-Key is refused before anything is claimed', async () => {
    const before = await quotaSnapshot(t);
    const res = await request(t.server)
      .post(`/api/v1/quota/members/${memberId}/consume`)
      .set(bearer(service))
      .set('Idempotency-Key', LONG(256))
      .send({ amount: 1 });
    expectProblem(res, 422, 'validation_failed');
    expect(await quotaSnapshot(t)).toEqual(before);
  });
});
