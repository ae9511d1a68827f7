// This program is compiled only by the generated-client check (generated-client.process.spec.ts),
// with this package's TypeScript 5 in strict mode, against types that openapi-typescript generates
// from openapi.json. The repository's own TypeScript (6) cannot resolve those, so it skips the
// file: the check removes the next two lines first, and refuses to run if they are missing.
// eslint-disable-next-line @typescript-eslint/ban-ts-comment
// @ts-nocheck

/*
 * The example calls of docs/api.md, made through openapi-fetch with the generated types: if the
 * document makes a defaulted field required, drops a status or misnames a field, this stops
 * compiling (or, run against the service, fails). No casts: every value is narrowed the way a
 * client would narrow it.
 */
import createClient from 'openapi-fetch';
import type { components, paths } from './openapi.js';

type Problem = components['schemas']['Problem'];

const baseUrl = process.env.QUOTA_BASE_URL ?? 'http://localhost:3000';
const adminEmail = process.env.QUOTA_ADMIN_EMAIL ?? 'admin@example.com';
const adminPassword = process.env.QUOTA_ADMIN_PASSWORD ?? '';
// The service under test allows http and loopback destinations (WEBHOOK_ALLOW_*); nothing listens here.
const webhookUrl = process.env.QUOTA_WEBHOOK_URL ?? 'https://hooks.example.com/quota';

let calls = 0;

function fail(what: string, response: Response, error: unknown): never {
  throw new Error(`${what}: HTTP ${response.status} ${JSON.stringify(error)}`);
}

function expectEqual<T>(what: string, actual: T, expected: T): void {
  if (actual !== expected) throw new Error(`${what}: expected ${String(expected)}, got ${String(actual)}`);
}

async function main(): Promise<void> {
  const anonymous = createClient<paths>({ baseUrl });

  const health = await anonymous.GET('/api/v1/health');
  calls++;
  if (!health.data) fail('health', health.response, health.error);
  expectEqual('health status', health.data.status, 'healthy');

  const login = await anonymous.POST('/api/v1/auth/login', { body: { email: adminEmail, password: adminPassword } });
  calls++;
  if (!login.data) fail('login', login.response, login.error);
  const api = createClient<paths>({
    baseUrl,
    headers: { Authorization: `Bearer ${login.data.data.access_token}` },
  });

  // The seed's own call: every other field has a default.
  const config = await api.POST('/api/v1/admin/quota/configs', {
    body: { membership_type: 'regular', max_quota: 50 },
  });
  calls++;
  if (!config.data) fail('create config', config.response, config.error);
  expectEqual('default reset_period', config.data.data.reset_period, 'none');
  expectEqual('default is_active', config.data.data.is_active, true);

  const premium = await api.POST('/api/v1/admin/quota/configs', {
    body: {
      membership_type: 'premium',
      max_quota: 200,
      reset_period: 'monthly',
      is_active: true,
      description: 'Premium plan',
    },
  });
  calls++;
  if (!premium.data) fail('create config with every field', premium.response, premium.error);

  const duplicate = await api.POST('/api/v1/admin/quota/configs', {
    body: { membership_type: 'regular', max_quota: 50 },
  });
  calls++;
  if (duplicate.error === undefined) fail('duplicate config', duplicate.response, duplicate.data);
  expectEqual('duplicate config code', duplicate.error.code, 'duplicate_membership_type');

  const member = await api.POST('/api/v1/admin/members', {
    body: { external_id: 'user-1001', membership_type: 'regular' },
  });
  calls++;
  if (!member.data) fail('create member', member.response, member.error);
  const memberId = member.data.data.id;
  expectEqual('initial balance', member.data.data.quota_balance, 50);

  const batch = await api.POST('/api/v1/admin/members/batch', {
    body: {
      members: [
        { external_id: 'user-2001', membership_type: 'regular' },
        { external_id: 'user-2002', membership_type: 'premium', initial_quota: 5 },
      ],
    },
  });
  calls++;
  if (!batch.data) fail('batch', batch.response, batch.error);
  expectEqual('batch created', batch.data.meta.created, 2);

  const consume = () =>
    api.POST('/api/v1/quota/members/{id}/consume', {
      params: { path: { id: memberId }, header: { 'Idempotency-Key': '5b0f7c1e-2a47-4e8e-9f3c-0d2d7d1c9a11' } },
      body: { amount: 5, note: 'report export' },
    });
  const consumed = await consume();
  calls++;
  if (!consumed.data) fail('consume', consumed.response, consumed.error);
  expectEqual('balance after consume', consumed.data.data.balance, 45);
  expectEqual('X-Quota-Remaining', consumed.response.headers.get('X-Quota-Remaining'), '45');
  const replayed = await consume();
  calls++;
  if (!replayed.data) fail('consume replay', replayed.response, replayed.error);
  expectEqual('Idempotent-Replayed', replayed.response.headers.get('Idempotent-Replayed'), 'true');
  expectEqual('replayed balance', replayed.data.data.balance, 45);

  const refused = await api.POST('/api/v1/quota/members/{id}/consume', {
    params: { path: { id: memberId } },
    body: { amount: 1000 },
  });
  calls++;
  if (refused.error === undefined) fail('consume past the balance', refused.response, refused.data);
  const refusal: Problem = refused.error;
  expectEqual('refusal code', refusal.code, 'insufficient_quota');
  if ('balance' in refused.error) expectEqual('balance in the refusal', refused.error.balance, 45);
  else throw new Error('insufficient_quota without its balance');

  const refund = await api.POST('/api/v1/quota/members/{id}/refund', {
    params: { path: { id: memberId } },
    body: { amount: 5 },
  });
  calls++;
  if (!refund.data) fail('refund', refund.response, refund.error);
  expectEqual('balance after refund', refund.data.data.balance, 50);

  const balance = await api.GET('/api/v1/quota/members/{id}', { params: { path: { id: memberId } } });
  calls++;
  if (!balance.data) fail('balance', balance.response, balance.error);
  expectEqual('balance', balance.data.data.balance, 50);
  expectEqual('next reset of a type that never resets', balance.data.data.next_reset_at, null);

  const delta = await api.POST('/api/v1/admin/quota/members/{id}/adjust', {
    params: { path: { id: memberId } },
    body: { delta: 25, note: 'goodwill after outage' },
  });
  calls++;
  if (!delta.data) fail('adjust by delta', delta.response, delta.error);
  expectEqual('default adjust reason', delta.data.data.reason, 'manual_adjustment');
  const exact = await api.POST('/api/v1/admin/quota/members/{id}/adjust', {
    params: { path: { id: memberId } },
    body: { new_quota: 100, reason: 'manual_adjustment' },
  });
  calls++;
  if (!exact.data) fail('adjust to a value', exact.response, exact.error);
  expectEqual('balance after adjust', exact.data.data.balance, 100);

  let cursor: string | undefined;
  let rows = 0;
  do {
    const page = await api.GET('/api/v1/admin/quota/history', {
      params: { query: { member_id: memberId, limit: 2, ...(cursor === undefined ? {} : { cursor }) } },
    });
    calls++;
    if (!page.data) fail('history', page.response, page.error);
    rows += page.data.data.length;
    cursor = page.data.meta.next_cursor ?? undefined;
  } while (cursor !== undefined);
  // initial_grant, consumption, refund, two manual adjustments
  expectEqual('history rows', rows, 5);

  // Holds: reserve 10, commit 4 (the other 6 come back at once), reserve and release 5.
  const reserved = await api.POST('/api/v1/quota/members/{id}/holds', {
    params: { path: { id: memberId }, header: { 'Idempotency-Key': 'job-7-reserve' } },
    body: { amount: 10, ttl_seconds: 600, note: 'export job 7' },
  });
  calls++;
  if (!reserved.data) fail('hold', reserved.response, reserved.error);
  expectEqual('hold status', reserved.data.data.status, 'held');
  expectEqual('balance after the hold', reserved.data.data.balance, 90);
  const holdId = reserved.data.data.hold_id;
  const committed = await api.POST('/api/v1/quota/holds/{hold_id}/commit', {
    params: { path: { hold_id: holdId } },
    body: { amount: 4 },
  });
  calls++;
  if (!committed.data) fail('commit', committed.response, committed.error);
  expectEqual('released on commit', committed.data.data.released_amount, 6);
  expectEqual('balance after the commit', committed.data.data.balance, 96);
  const again = await api.POST('/api/v1/quota/holds/{hold_id}/release', { params: { path: { hold_id: holdId } } });
  calls++;
  if (again.error === undefined) fail('release a committed hold', again.response, again.data);
  expectEqual('settled refusal', again.error.code, 'hold_settled');
  const second = await api.POST('/api/v1/quota/members/{id}/holds', {
    params: { path: { id: memberId } },
    body: { amount: 5 },
  });
  calls++;
  if (!second.data) fail('second hold', second.response, second.error);
  const released = await api.POST('/api/v1/quota/holds/{hold_id}/release', {
    params: { path: { hold_id: second.data.data.hold_id } },
  });
  calls++;
  if (!released.data) fail('release', released.response, released.error);
  expectEqual('balance after the release', released.data.data.balance, 96);
  const oneHold = await api.GET('/api/v1/quota/holds/{hold_id}', { params: { path: { hold_id: holdId } } });
  calls++;
  if (!oneHold.data) fail('read a hold', oneHold.response, oneHold.error);
  expectEqual('committed amount', oneHold.data.data.committed_amount, 4);
  const openHolds = await api.GET('/api/v1/admin/quota/holds', {
    params: { query: { member_id: memberId, status: 'held', limit: 50 } },
  });
  calls++;
  if (!openHolds.data) fail('list holds', openHolds.response, openHolds.error);
  expectEqual('open holds', openHolds.data.data.length, 0);

  // Balances in time: the balance at an instant, and a statement whose totals add up.
  const before = new Date(Date.now() - 1).toISOString();
  const atInstant = await api.GET('/api/v1/quota/members/{id}', {
    params: { path: { id: memberId }, query: { at: before } },
  });
  calls++;
  if (!atInstant.data) fail('balance at an instant', atInstant.response, atInstant.error);
  expectEqual('balance at an instant', atInstant.data.data.balance, 96);
  expectEqual('as_of', atInstant.data.data.as_of, before);
  const statement = await api.GET('/api/v1/admin/quota/members/{id}/statement', {
    params: { path: { id: memberId } },
  });
  calls++;
  if (!statement.data) fail('statement', statement.response, statement.error);
  let closing = statement.data.data.opening_balance;
  for (const total of Object.values(statement.data.data.totals)) closing += total.units;
  expectEqual('closing balance', statement.data.data.closing_balance, closing);
  expectEqual('closing balance now', statement.data.data.closing_balance, 96);

  // Member ids as docs/api.md sends them: JSON integers (strings of digits work too).
  const bulk = await api.POST('/api/v1/admin/quota/bulk-adjust', {
    params: { header: { 'Idempotency-Key': 'spring-campaign-2026' } },
    body: {
      member_ids: batch.data.data.map((m) => Number(m.id)),
      new_quota: 100,
      reason: 'bulk_adjustment',
      note: 'spring campaign',
    },
  });
  calls++;
  if (!bulk.data) fail('bulk-adjust', bulk.response, bulk.error);
  if (!('message' in bulk.data)) throw new Error('bulk-adjust answered a dry run');
  expectEqual('bulk status', bulk.data.data.status, 'queued');
  const operationId = bulk.data.data.operation_id;

  const dryRun = await api.POST('/api/v1/admin/quota/bulk-adjust', {
    body: { membership_type: 'premium', new_quota: 0, dry_run: true },
  });
  calls++;
  if (!dryRun.data) fail('bulk-adjust dry run', dryRun.response, dryRun.error);
  if ('message' in dryRun.data) throw new Error('a dry run was queued');
  expectEqual('dry run total', dryRun.data.data.total, 1);

  const operation = await api.GET('/api/v1/admin/quota/operations/{id}', { params: { path: { id: operationId } } });
  calls++;
  if (!operation.data) fail('operation', operation.response, operation.error);
  expectEqual('operation total', operation.data.data.total, 2);

  const operations = await api.GET('/api/v1/admin/quota/operations', {
    params: { query: { kind: 'bulk_adjust', page: 1, per_page: 20 } },
  });
  calls++;
  if (!operations.data) fail('operations', operations.response, operations.error);

  // Cancelling races the worker: a finished operation answers 409 operation_finished.
  const cancel = await api.POST('/api/v1/admin/quota/operations/{id}/cancel', {
    params: { path: { id: operationId } },
  });
  calls++;
  if (cancel.error !== undefined && cancel.error.code !== 'operation_finished') {
    fail('cancel', cancel.response, cancel.error);
  }

  const stats = await api.GET('/api/v1/admin/quota/stats', { params: { query: { membership_type: 'regular' } } });
  calls++;
  if (!stats.data) fail('stats', stats.response, stats.error);
  const cache = stats.response.headers.get('X-Cache');
  if (cache !== 'HIT' && cache !== 'MISS') throw new Error(`X-Cache: ${String(cache)}`);
  expectEqual('members of type regular', stats.data.data.totals.members, 2);

  const removed = await api.DELETE('/api/v1/admin/quota/configs/{id}', {
    params: { path: { id: config.data.data.id } },
  });
  calls++;
  if (removed.error === undefined) fail('delete a config in use', removed.response, undefined);
  expectEqual('delete refusal', removed.error.code, 'config_in_use');

  // Webhooks: a subscription (its secret shown once), a test event queued, the delivery log, a rotation.
  const webhook = await api.POST('/api/v1/admin/webhooks', {
    body: { url: webhookUrl, events: ['operation.completed', 'anomaly.detected'] },
  });
  calls++;
  if (!webhook.data) fail('create a webhook', webhook.response, webhook.error);
  if (!webhook.data.data.secret.startsWith('whsec_')) throw new Error('the secret is not whsec_…');
  const webhookId = webhook.data.data.id;
  const testEvent = await api.POST('/api/v1/admin/webhooks/{id}/test', { params: { path: { id: webhookId } } });
  calls++;
  if (!testEvent.data) fail('test event', testEvent.response, testEvent.error);
  expectEqual('test event type', testEvent.data.data.event_type, 'webhook.test');
  const deliveries = await api.GET('/api/v1/admin/webhooks/{id}/deliveries', {
    params: { path: { id: webhookId }, query: { limit: 10 } },
  });
  calls++;
  if (!deliveries.data) fail('delivery log', deliveries.response, deliveries.error);
  expectEqual(
    'deliveries logged',
    deliveries.data.data.some((d) => d.event_id === testEvent.data.data.event_id),
    true,
  );
  const rotated = await api.POST('/api/v1/admin/webhooks/{id}/rotate-secret', { params: { path: { id: webhookId } } });
  calls++;
  if (!rotated.data) fail('rotate the secret', rotated.response, rotated.error);
  if (rotated.data.data.secret === webhook.data.data.secret) throw new Error('the rotation kept the secret');
  if (rotated.data.data.previous_secret_expires_at === null) throw new Error('the old secret does not overlap');

  // The write freeze: writes answer 503 read_only while reads go on, until it is lifted.
  const frozen = await api.PUT('/api/v1/admin/maintenance', {
    body: { read_only: true, reason: 'restore from backup' },
  });
  calls++;
  if (!frozen.data) fail('freeze', frozen.response, frozen.error);
  expectEqual('frozen', frozen.data.data.read_only, true);
  const refusedWhileFrozen = await api.POST('/api/v1/quota/members/{id}/consume', {
    params: { path: { id: memberId } },
    body: { amount: 1 },
  });
  calls++;
  if (refusedWhileFrozen.error === undefined) fail('consume while frozen', refusedWhileFrozen.response, undefined);
  expectEqual('freeze refusal', refusedWhileFrozen.error.code, 'read_only');
  const readWhileFrozen = await api.GET('/api/v1/quota/members/{id}', { params: { path: { id: memberId } } });
  calls++;
  if (!readWhileFrozen.data) fail('read while frozen', readWhileFrozen.response, readWhileFrozen.error);
  const thawed = await api.PUT('/api/v1/admin/maintenance', { body: { read_only: false } });
  calls++;
  if (!thawed.data) fail('unfreeze', thawed.response, thawed.error);
  const state = await api.GET('/api/v1/admin/maintenance');
  calls++;
  if (!state.data) fail('maintenance state', state.response, state.error);
  expectEqual('writable again', state.data.data.read_only, false);

  console.log(`readme calls: ${calls} calls answered as documented`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
