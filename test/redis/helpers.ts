import { Cluster, Redis } from 'ioredis';
import request from 'supertest';
import { STATS } from '../analytics/helpers';
import { expectProblem } from '../auth/helpers';
import { BULK, balances, rowsPerMember, seedMembers, waitForOperation } from '../jobs/helpers';
import { bearer, loginAs } from '../support/auth';
import { createMember, ledgerReport } from '../support/quota-factories';
import type { TestApp } from '../support/test-app';

/** Every key matching the pattern, from every master of a Cluster or from the one server. */
export async function keysMatching(client: Redis | Cluster, pattern: string): Promise<string[]> {
  const nodes = client instanceof Cluster ? client.nodes('master') : [client];
  const found: string[] = [];
  for (const node of nodes) found.push(...(await node.keys(pattern)));
  return found.sort();
}

/** GET /api/v1/health: healthy, operational, and the Redis check up. */
export async function expectRedisHealthy(t: TestApp): Promise<void> {
  const res = await request(t.server).get('/api/v1/health');
  expect(res.status).toBe(200);
  expect(res.body).toMatchObject({ status: 'healthy', database: 'connected', quota_system: 'operational' });
  expect(res.body.details.redis).toMatchObject({ status: 'up' });
}

/**
 * A bulk adjustment of `count` members through the BullMQ queue, to completion: each member set
 * to the new quota exactly once, one history row each, the ledger consistent.
 */
export async function expectBulkAdjustment(t: TestApp, admin: string, count: number): Promise<void> {
  const { ids } = await seedMembers(t, count, { balance: 10, maxQuota: 100 });
  const res = await request(t.server).post(BULK).set(bearer(admin)).send({ member_ids: ids, new_quota: 42 });
  expect(res.status).toBe(202);
  const op = await waitForOperation(t, admin, res.body.data.operation_id, undefined, 60_000);
  expect(op).toMatchObject({ status: 'completed', total: count, processed: count, changed: count, failed: 0 });
  expect(await balances(t, ids)).toEqual(ids.map(() => 42));
  const perMember = await rowsPerMember(t, op.id);
  expect(perMember.size).toBe(count);
  expect([...perMember.values()].every((n) => n === 1)).toBe(true);
  expect((await ledgerReport(t)).mismatches).toEqual([]);
}

/** Past THROTTLE_LIMIT (3 on `limited`) one user gets 429, counted in Redis under the hash tag. */
export async function expectRateLimited(limited: TestApp, client: Redis | Cluster, prefix: string): Promise<void> {
  expect(limited.config.throttle.limit).toBe(3);
  const user = await loginAs(limited, 'operator');
  const statuses: number[] = [];
  for (let i = 0; i < 3; i++) {
    statuses.push((await request(limited.server).get('/api/v1/auth/me').set(bearer(user.token))).status);
  }
  expect(statuses).toEqual([200, 200, 200]);
  expectProblem(await request(limited.server).get('/api/v1/auth/me').set(bearer(user.token)), 429, 'rate_limited');
  const hits = `{${prefix}:throttle:default:user:${user.userId}:default}:hits`;
  expect(await client.get(hits)).toBe('4');
}

/** The stats cache: a miss stored in Redis under REDIS_PREFIX, then a hit with the same body. */
export async function expectStatsCached(t: TestApp, admin: string, client: Redis | Cluster, prefix: string) {
  const member = await createMember(t, { maxQuota: 30 });
  const url = `${STATS}?membership_type=${member.membershipType}`;
  const first = await request(t.server).get(url).set(bearer(admin));
  expect(first.status).toBe(200);
  expect(first.headers['x-cache']).toBe('MISS');
  const keys = await keysMatching(client, `${prefix}:stats::*${member.membershipType}*`);
  expect(keys).toHaveLength(1);
  const second = await request(t.server).get(url).set(bearer(admin));
  expect(second.status).toBe(200);
  expect(second.headers['x-cache']).toBe('HIT');
  expect(second.body.data).toEqual(first.body.data);
  expect(second.body.meta.generated_at).toBe(first.body.meta.generated_at);
}
