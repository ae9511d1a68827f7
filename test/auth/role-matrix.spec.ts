import { Controller, Get, Module } from '@nestjs/common';
import request from 'supertest';
import { Public, Roles } from '../../src/auth/decorators';
import { ROLES, type Role } from '../../src/auth/principal';
import { bearer, loginAs } from '../support/auth';
import { listAppRoutes, routeKey, ROUTE_RULES, type RouteRule } from '../support/route-rules';
import { startTestApp, type TestApp } from '../support/test-app';
import { expectProblem, tableCounts } from './helpers';

type Caller = Role | 'anonymous';
const CALLERS: readonly Caller[] = [...ROLES, 'anonymous'];
/** An id no test row has, so allowed calls reach the handler without touching real data. */
const UNKNOWN_ID = '987654321';

function send(testApp: TestApp, rule: RouteRule, token: string | undefined) {
  const path = rule.path.replace(/:[A-Za-z_]+/g, UNKNOWN_ID);
  const agent = request(testApp.server);
  let req;
  switch (rule.method) {
    case 'GET':
      req = agent.get(path);
      break;
    case 'POST':
      req = agent.post(path).send({});
      break;
    case 'PATCH':
      req = agent.patch(path).send({});
      break;
    case 'PUT':
      req = agent.put(path).send({});
      break;
    case 'DELETE':
      req = agent.delete(path);
      break;
  }
  return token ? req.set(bearer(token)) : req;
}

describe('role × endpoint matrix', () => {
  let testApp: TestApp;
  const tokens = new Map<Caller, string>();

  beforeAll(async () => {
    // The matrix sends many requests from one address; rate limits are tested elsewhere.
    testApp = await startTestApp({ env: { THROTTLE_LIMIT: '0', THROTTLE_LOGIN_LIMIT: '0' } });
    for (const role of ROLES) tokens.set(role, (await loginAs(testApp, role)).token);
  });

  afterAll(async () => {
    await testApp?.close();
  });

  it('has a rule for every route the application serves, and no rule for a route that does not exist', () => {
    const served = listAppRoutes(testApp.app).map(routeKey);
    const ruled = ROUTE_RULES.map(routeKey);
    expect(served.length).toBeGreaterThan(0);
    expect({ withoutRule: served.filter((r) => !ruled.includes(r)) }).toEqual({ withoutRule: [] });
    expect({ notServed: ruled.filter((r) => !served.includes(r)) }).toEqual({ notServed: [] });
    expect(new Set(ruled).size).toBe(ruled.length);
  });

  describe.each(ROUTE_RULES.map((rule) => [routeKey(rule), rule] as const))('%s', (_name, rule) => {
    it.each(CALLERS)('as %s', async (caller) => {
      const before = await tableCounts(testApp);
      const res = await send(testApp, rule, caller === 'anonymous' ? undefined : tokens.get(caller));
      if (rule.allowed === 'public' || (caller !== 'anonymous' && rule.allowed.includes(caller))) {
        // Reaches the handler: whatever it answers to an empty request, it is not an auth refusal.
        expect([401, 403]).not.toContain(res.status);
        return;
      }
      if (caller === 'anonymous') expectProblem(res, 401, 'unauthorized');
      else expectProblem(res, 403, 'forbidden');
      expect(await tableCounts(testApp)).toEqual(before);
    });
  });
});

@Controller('probe')
class ProbeController {
  @Get('forgotten')
  forgotten() {
    return { data: 'should never be served' };
  }

  @Get('admins')
  @Roles('admin')
  admins() {
    return { data: 'admins only' };
  }

  @Get('open')
  @Public()
  open() {
    return { data: 'anyone' };
  }
}

@Module({ controllers: [ProbeController] })
class ProbeModule {}

describe('deny by default', () => {
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await startTestApp({ extraModules: [ProbeModule] });
  });

  afterAll(async () => {
    await testApp?.close();
  });

  it('refuses a route that has neither @Roles nor @Public: 401 without a token, 403 for every role', async () => {
    expectProblem(await request(testApp.server).get('/api/v1/probe/forgotten'), 401, 'unauthorized');
    for (const role of ROLES) {
      const { token } = await loginAs(testApp, role);
      const res = await request(testApp.server).get('/api/v1/probe/forgotten').set(bearer(token));
      expectProblem(res, 403, 'forbidden');
    }
  });

  it('serves @Roles routes to those roles only and @Public routes to anyone', async () => {
    const admin = await loginAs(testApp, 'admin');
    const operator = await loginAs(testApp, 'operator');
    const ok = await request(testApp.server).get('/api/v1/probe/admins').set(bearer(admin.token));
    expect({ status: ok.status, body: ok.body }).toEqual({ status: 200, body: { data: 'admins only' } });
    expectProblem(
      await request(testApp.server).get('/api/v1/probe/admins').set(bearer(operator.token)),
      403,
      'forbidden',
    );
    const open = await request(testApp.server).get('/api/v1/probe/open');
    expect({ status: open.status, body: open.body }).toEqual({ status: 200, body: { data: 'anyone' } });
  });

  it('is what makes the matrix fail: a new route without a rule is reported', () => {
    const ruled = ROUTE_RULES.map(routeKey);
    const withoutRule = listAppRoutes(testApp.app)
      .map(routeKey)
      .filter((r) => !ruled.includes(r) && r.includes('/probe/'));
    expect(withoutRule.sort()).toEqual([
      'GET /api/v1/probe/admins',
      'GET /api/v1/probe/forgotten',
      'GET /api/v1/probe/open',
    ]);
  });
});
