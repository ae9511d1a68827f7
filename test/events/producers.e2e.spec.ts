import request from 'supertest';
import { TailRepository } from '../../src/analytics/tail.repository';
import { readTimestamp, sqlTimestamp } from '../../src/database/sql-session';
import { EventsRepository } from '../../src/events/events.repository';
import { JobsClock } from '../../src/jobs/clock';
import { ResetScheduler } from '../../src/jobs/reset-scheduler.service';
import { LedgerBulkService, type BulkChunk } from '../../src/quota/ledger-bulk.service';
import type { SqlSession } from '../../src/database/sql-session';
import { ANALYTICS_TEST_ENV, ANOMALIES, consume, processTail } from '../analytics/helpers';
import { ISO_MS } from '../auth/helpers';
import { BULK, seedMembers, waitForOperation } from '../jobs/helpers';
import { bearer, loginAs, type LoggedIn } from '../support/auth';
import { balanceOf, createMember, sql } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';

interface StoredEvent {
  id: string;
  uid: string;
  type: string;
  source: string;
  body: { type: string; timestamp: string; data: Record<string, unknown> };
  bodyText: string;
  createdAt: string;
}

interface StoredDelivery {
  subscription_id: string;
  status: string;
  attempts: number;
}

const HOLD = (id: string) => `/api/v1/quota/holds/${id}`;

/**
 * Producers of webhook events (contract §12): each event is recorded in the transaction of what
 * caused it, with one pending delivery per active subscription to its type.
 */
describe('webhook event producers', () => {
  let t: TestApp;
  let admin: string;
  let service: LoggedIn;
  /** Subscribed to every event a producer records. */
  let everything: string;
  /** Subscribed to hold.expired only. */
  let holdsOnly: string;
  /** Subscribed to everything, but inactive. */
  let inactive: string;

  beforeAll(async () => {
    t = await startTestApp({
      env: {
        ...ANALYTICS_TEST_ENV,
        QUOTA_ANOMALY_BURST_COUNT: '5',
        QUOTA_HOLD_EXPIRY_INTERVAL_MS: '200',
        JOBS_CHUNK_SIZE: '25',
        JOBS_RESET_TICK_MS: '3600000',
      },
    });
    admin = (await loginAs(t, 'admin')).token;
    service = await loginAs(t, 'service');
    const all = 'anomaly.detected,quota.threshold_reached,operation.completed,operation.failed,hold.expired';
    everything = await subscribe(all, true);
    holdsOnly = await subscribe('hold.expired', true);
    inactive = await subscribe(all, false);
  });
  afterAll(async () => {
    await t?.close();
  });

  async function subscribe(eventTypes: string, active: boolean): Promise<string> {
    const now = sqlTimestamp(new Date());
    await sql(
      t,
      `INSERT INTO webhook_subscriptions (url, event_types, secret, created_by, is_active, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
      [
        'https://example.test/h',
        eventTypes,
        'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
        'test',
        active ? 1 : 0,
        now,
        now,
      ],
    );
    const [row] = await sql<{ id: unknown }>(t, 'SELECT MAX(id) AS id FROM webhook_subscriptions');
    return String(row.id);
  }

  async function events(type: string, where = '', params: unknown[] = []): Promise<StoredEvent[]> {
    const rows = await sql<{
      id: unknown;
      uid: string;
      type: string;
      source: string;
      body: string;
      created_at: unknown;
    }>(t, `SELECT id, uid, type, source, body, created_at FROM webhook_events WHERE type = ?${where} ORDER BY id`, [
      type,
      ...params,
    ]);
    return rows.map((r) => ({
      id: String(r.id),
      uid: r.uid,
      type: r.type,
      source: r.source,
      body: JSON.parse(r.body) as StoredEvent['body'],
      bodyText: r.body,
      createdAt: String(r.created_at),
    }));
  }

  const eventsFrom = (source: string) =>
    sql<{ type: string }>(t, 'SELECT type FROM webhook_events WHERE source = ? ORDER BY id', [source]);

  async function eventCount(): Promise<number> {
    const [row] = await sql<{ n: unknown }>(t, 'SELECT COUNT(*) AS n FROM webhook_events');
    return Number(row.n);
  }

  async function deliveries(eventId: string): Promise<StoredDelivery[]> {
    const rows = await sql<{ subscription_id: unknown; status: string; attempts: unknown }>(
      t,
      'SELECT subscription_id, status, attempts FROM webhook_deliveries WHERE event_id = ? ORDER BY subscription_id',
      [eventId],
    );
    return rows.map((r) => ({
      subscription_id: String(r.subscription_id),
      status: r.status,
      attempts: Number(r.attempts),
    }));
  }

  /** The body every delivery sends, and one pending delivery per active subscription to the type. */
  async function expectRecorded(event: StoredEvent, subscribers: string[]): Promise<void> {
    expect(Object.keys(event.body)).toEqual(['type', 'timestamp', 'data']);
    expect(event.body.type).toBe(event.type);
    expect(event.body.timestamp).toMatch(ISO_MS);
    expect(event.uid).toMatch(/^msg_[A-Za-z0-9_-]{24}$/);
    const made = await deliveries(event.id);
    expect(made).toEqual(subscribers.map((subscription_id) => ({ subscription_id, status: 'pending', attempts: 0 })));
    expect(made.map((d) => d.subscription_id)).not.toContain(inactive);
  }

  const thresholdEventsOf = async (memberId: string) =>
    (await events('quota.threshold_reached')).filter((e) => e.body.data.member_id === memberId);

  const historyIds = async (memberId: string, reason: string) =>
    (
      await sql<{ id: unknown }>(
        t,
        'SELECT id FROM member_quota_history WHERE member_id = ? AND reason = ? ORDER BY id',
        [memberId, reason],
      )
    ).map((r) => String(r.id));

  describe('anomaly.detected', () => {
    it('records one event per anomaly, with the anomaly as the anomalies API shows it', async () => {
      const member = await createMember(t, { maxQuota: 1000 });
      for (let i = 0; i < 5; i++) await consume(t, service.token, member.id, 1);
      await processTail(t);

      const listed = await request(t.server).get(`${ANOMALIES}?member_id=${member.id}`).set(bearer(admin)).expect(200);
      expect(listed.body.data.map((a: { kind: string }) => a.kind)).toEqual(['burst']);
      const anomaly = listed.body.data[0] as Record<string, unknown>;
      const recorded = await events('anomaly.detected', ' AND source = ?', [`anomaly:${String(anomaly.id)}`]);
      expect(recorded).toHaveLength(1);
      expect(recorded[0].body.data).toEqual(anomaly);
      expect(recorded[0].body.timestamp).toBe(anomaly.detected_at);
      await expectRecorded(recorded[0], [everything]);

      // Processing again stores no anomaly and records no event twice.
      await processTail(t);
      expect(await events('anomaly.detected', ' AND source = ?', [`anomaly:${String(anomaly.id)}`])).toHaveLength(1);
    });

    it('covers every kind: threshold anomalies give events too', async () => {
      const member = await createMember(t, { maxQuota: 10 });
      await consume(t, service.token, member.id, 8);
      await consume(t, service.token, member.id, 2);
      await processTail(t);
      const listed = await request(t.server).get(`${ANOMALIES}?member_id=${member.id}`).set(bearer(admin)).expect(200);
      const kinds = (listed.body.data as { kind: string }[]).map((a) => a.kind).sort();
      expect(kinds).toEqual(['threshold_100', 'threshold_80']);
      for (const anomaly of listed.body.data as { id: string }[]) {
        const [event] = await events('anomaly.detected', ' AND source = ?', [`anomaly:${anomaly.id}`]);
        expect(event.body.data).toEqual(anomaly);
      }
    });
  });

  describe('quota.threshold_reached', () => {
    it('is detected by the tail processor, never on the consume path; 80 and 100 once each', async () => {
      const member = await createMember(t, { maxQuota: 10 });
      const [{ external_id: externalId }] = await sql<{ external_id: string }>(
        t,
        'SELECT external_id FROM members WHERE id = ?',
        [member.id],
      );
      await processTail(t);

      // Below 80 %: nothing.
      await consume(t, service.token, member.id, 7);
      await processTail(t);
      expect(await thresholdEventsOf(member.id)).toEqual([]);

      // 70 % to 100 % in one consume: both levels, from the same row. The consume itself, with
      // active subscriptions, records nothing; the tail processor does.
      const before = await eventCount();
      await consume(t, service.token, member.id, 3);
      expect(await eventCount()).toBe(before);
      await processTail(t);
      const [row] = (await historyIds(member.id, 'consumption')).slice(-1);
      const [{ created_at: createdAt }] = await sql<{ created_at: unknown }>(
        t,
        'SELECT created_at FROM member_quota_history WHERE id = ?',
        [row],
      );
      const crossed = await thresholdEventsOf(member.id);
      expect(crossed.map((e) => e.body.data.threshold)).toEqual([80, 100]);
      for (const [i, event] of crossed.entries()) {
        expect(event.source).toBe(`history:${row}`);
        expect(event.body.data).toEqual({
          member_id: member.id,
          external_id: externalId,
          membership_type: member.membershipType,
          threshold: [80, 100][i],
          max_quota: 10,
          balance: 0,
          history_id: row,
          reason: 'consumption',
          occurred_at: expect.stringMatching(ISO_MS),
        });
        expect(event.body.data.occurred_at).toBe(readTimestamp(createdAt).toISOString());
        await expectRecorded(event, [everything]);
      }

      // Refunds give none, and spending below 80 % again gives none either.
      await request(t.server)
        .post(`/api/v1/quota/members/${member.id}/refund`)
        .set(bearer(service.token))
        .send({ amount: 5 })
        .expect(200);
      await consume(t, service.token, member.id, 1);
      await processTail(t);
      expect(await thresholdEventsOf(member.id)).toHaveLength(2);
    });

    it('crosses 80 and 100 in separate rows once each, on holds and negative adjustments too', async () => {
      const member = await createMember(t, { maxQuota: 20 });
      const hold = await request(t.server)
        .post(`/api/v1/quota/members/${member.id}/holds`)
        .set(bearer(service.token))
        .send({ amount: 16 });
      expect(hold.status).toBe(201);
      await consume(t, service.token, member.id, 1);
      await request(t.server)
        .post(`/api/v1/admin/quota/members/${member.id}/adjust`)
        .set(bearer(admin))
        .send({ delta: -3 })
        .expect(200);
      await processTail(t);
      const crossed = await thresholdEventsOf(member.id);
      expect(crossed.map((e) => [e.body.data.threshold, e.body.data.reason, e.body.data.balance])).toEqual([
        [80, 'hold', 4],
        [100, 'manual_adjustment', 0],
      ]);
      expect(crossed[0].source).toBe(`history:${(await historyIds(member.id, 'hold'))[0]}`);
      expect(crossed[1].source).toBe(`history:${(await historyIds(member.id, 'manual_adjustment'))[0]}`);

      // Committing the hold gives its units back and consumes them (0 -> 16 -> 0): that is no new
      // spending, the hold row counted it already.
      await request(t.server)
        .post(`${HOLD(hold.body.data.hold_id as string)}/commit`)
        .set(bearer(service.token))
        .send({})
        .expect(200);
      expect(await historyIds(member.id, 'consumption')).toHaveLength(2);
      await processTail(t);
      expect(await thresholdEventsOf(member.id)).toHaveLength(2);
    });

    it('records the many crossings of one run together: one event and one pending delivery per crossing', async () => {
      const { ids, membershipType } = await seedMembers(t, 600, { balance: 50, maxQuota: 100 });
      await processTail(t);
      const res = await request(t.server)
        .post(BULK)
        .set(bearer(admin))
        .send({ membership_type: membershipType, delta: -40 });
      const op = await waitForOperation(t, admin, res.body.data.operation_id as string);
      expect(op).toMatchObject({ status: 'completed', changed: 600 });
      await processTail(t);

      const rows = await sql<{ id: unknown; member_id: unknown }>(
        t,
        'SELECT id, member_id FROM member_quota_history WHERE operation_id = ? ORDER BY id',
        [op.id],
      );
      expect(rows).toHaveLength(600);
      const memberOf = new Map(rows.map((r) => [`history:${String(r.id)}`, String(r.member_id)]));
      const recorded = (await events('quota.threshold_reached')).filter((e) => memberOf.has(e.source));
      expect(recorded).toHaveLength(600);
      expect(new Set(recorded.map((e) => e.source)).size).toBe(600);
      for (const event of recorded) {
        expect(event.body.data).toMatchObject({
          member_id: memberOf.get(event.source),
          membership_type: membershipType,
          threshold: 80,
          balance: 10,
          reason: 'bulk_adjustment',
        });
      }
      expect(new Set(recorded.map((e) => e.body.data.member_id))).toEqual(new Set(ids));
      const delivered = await sql<{ event_id: unknown; subscription_id: unknown; status: string }>(
        t,
        `SELECT d.event_id, d.subscription_id, d.status FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
          WHERE e.type = 'quota.threshold_reached' AND e.id >= ? ORDER BY d.event_id`,
        [recorded[0].id],
      );
      const mine = delivered.filter((d) => recorded.some((e) => e.id === String(d.event_id)));
      expect(mine).toHaveLength(600);
      expect(new Set(mine.map((d) => String(d.event_id))).size).toBe(600);
      expect(new Set(mine.map((d) => `${String(d.subscription_id)}:${d.status}`))).toEqual(
        new Set([`${everything}:pending`]),
      );
    });

    it('gives nothing for a type whose max_quota is 0', async () => {
      const member = await createMember(t, { maxQuota: 0, initialQuota: 5 });
      await consume(t, service.token, member.id, 5);
      await processTail(t);
      expect(await thresholdEventsOf(member.id)).toEqual([]);
    });

    it('detects a crossing in a row folded late (found in an id gap), once', async () => {
      const member = await createMember(t, { maxQuota: 10 });
      await processTail(t);
      const [{ id: max }] = await sql<{ id: unknown }>(t, 'SELECT MAX(id) AS id FROM member_quota_history');
      const base = Number(max);
      const at = sqlTimestamp(new Date(Date.now() - 1000));
      // A row with a higher id first: the watermark passes base + 1 while it has no row ...
      await sql(t, 'UPDATE members SET quota_balance = 9 WHERE id = ?', [member.id]);
      await sql(
        t,
        "INSERT INTO member_quota_history (id, member_id, delta, balance_after, reason, actor, created_at) VALUES (?, ?, -1, 9, 'consumption', 'system', ?)",
        [base + 2, member.id, at],
      );
      await processTail(t);
      expect(await thresholdEventsOf(member.id)).toEqual([]);
      // ... then the late row (as a transaction that committed late leaves it): 10 % to 90 %.
      await sql(t, 'UPDATE members SET quota_balance = 1 WHERE id = ?', [member.id]);
      await sql(
        t,
        "INSERT INTO member_quota_history (id, member_id, delta, balance_after, reason, actor, created_at) VALUES (?, ?, -8, 1, 'consumption', 'system', ?)",
        [base + 1, member.id, at],
      );
      await processTail(t);
      await processTail(t);
      const crossed = await thresholdEventsOf(member.id);
      expect(crossed.map((e) => [e.source, e.body.data.threshold])).toEqual([[`history:${base + 1}`, 80]]);
      await expectRecorded(crossed[0], [everything]);
    });

    it('rolls back with the processor run that detected it, and is recorded by the run that commits', async () => {
      const member = await createMember(t, { maxQuota: 10 });
      await processTail(t);
      await consume(t, service.token, member.id, 9);
      const tail = t.app.get(TailRepository);
      const fail = jest.spyOn(tail, 'advanceWatermark').mockRejectedValueOnce(new Error('the run fails at its end'));
      try {
        await expect(processTail(t)).rejects.toThrow('the run fails at its end');
      } finally {
        fail.mockRestore();
      }
      expect(await thresholdEventsOf(member.id)).toEqual([]);
      const [row] = await historyIds(member.id, 'consumption');
      expect(await eventsFrom(`history:${row}`)).toEqual([]);

      await processTail(t);
      const crossed = await thresholdEventsOf(member.id);
      expect(crossed.map((e) => [e.source, e.body.data.threshold])).toEqual([[`history:${row}`, 80]]);
      await expectRecorded(crossed[0], [everything]);
    });
  });

  describe('operation.completed and operation.failed', () => {
    it('records operation.completed with the operation as GET /operations/:id shows it', async () => {
      const { ids } = await seedMembers(t, 30, { balance: 10 });
      const res = await request(t.server).post(BULK).set(bearer(admin)).send({ member_ids: ids, delta: 2 });
      expect(res.status).toBe(202);
      const id = res.body.data.operation_id as string;
      const op = await waitForOperation(t, admin, id);
      expect(op.status).toBe('completed');
      const recorded = await events('operation.completed', ' AND source = ?', [`operation:${id}`]);
      expect(recorded).toHaveLength(1);
      expect(recorded[0].body.data).toEqual(op);
      expect(recorded[0].body.timestamp).toBe(op.finished_at);
      await expectRecorded(recorded[0], [everything]);
      expect(await eventsFrom(`operation:${id}`)).toEqual([{ type: 'operation.completed' }]);
    });

    it('records it for config propagation and periodic resets too', async () => {
      const { ids, membershipType } = await seedMembers(t, 5, { balance: 40, maxQuota: 50 });
      const [{ id: configId }] = await sql<{ id: unknown }>(
        t,
        'SELECT id FROM member_quota_config WHERE membership_type = ?',
        [membershipType],
      );
      const patched = await request(t.server)
        .patch(`/api/v1/admin/quota/configs/${String(configId)}`)
        .set(bearer(admin))
        .send({ max_quota: 60, apply: 'delta', reset_period: 'daily' });
      expect(patched.status).toBe(200);
      const propagation = await waitForOperation(t, admin, patched.body.meta.operation_id as string);
      expect(propagation).toMatchObject({ kind: 'config_propagation', status: 'completed' });
      const [propagated] = await events('operation.completed', ' AND source = ?', [`operation:${propagation.id}`]);
      expect(propagated.body.data).toEqual(propagation);

      // Two days on, the daily reset of this config runs.
      const later = new Date(Date.now() + 2 * 86_400_000);
      const clock = jest.spyOn(t.app.get(JobsClock), 'now').mockImplementation(() => later);
      try {
        const created = await t.app.get(ResetScheduler).tick();
        const mine = await sql<{ id: unknown }>(
          t,
          "SELECT id FROM quota_operations WHERE kind = 'periodic_reset' AND config_id = ? ORDER BY id",
          [configId],
        );
        expect(mine).toHaveLength(1);
        const resetId = String(mine[0].id);
        expect(created).toContain(resetId);
        const reset = await waitForOperation(t, admin, resetId);
        expect(reset).toMatchObject({ kind: 'periodic_reset', status: 'completed', total: ids.length });
        const [recorded] = await events('operation.completed', ' AND source = ?', [`operation:${resetId}`]);
        expect(recorded.body.data).toEqual(reset);
        await expectRecorded(recorded, [everything]);
      } finally {
        clock.mockRestore();
      }
    });

    it('records operation.failed with the failure as the API shows it', async () => {
      const { membershipType } = await seedMembers(t, 30, { balance: 10 });
      const bulk = t.app.get(LedgerBulkService);
      const spy = jest.spyOn(bulk, 'applyChunk').mockRejectedValue(new Error('the chunk cannot be written'));
      let op: Awaited<ReturnType<typeof waitForOperation>>;
      try {
        const res = await request(t.server)
          .post(BULK)
          .set(bearer(admin))
          .send({ membership_type: membershipType, delta: 1 });
        op = await waitForOperation(
          t,
          admin,
          res.body.data.operation_id as string,
          ['completed', 'failed', 'cancelled'],
          25_000,
        );
      } finally {
        spy.mockRestore();
      }
      expect(op).toMatchObject({ status: 'failed', processed: 0, failed: 30 });
      const recorded = await events('operation.failed', ' AND source = ?', [`operation:${op.id}`]);
      expect(recorded).toHaveLength(1);
      expect(recorded[0].body.data).toEqual(op);
      await expectRecorded(recorded[0], [everything]);
      expect(await eventsFrom(`operation:${op.id}`)).toEqual([{ type: 'operation.failed' }]);
    }, 40_000);

    it('records nothing for a cancelled operation', async () => {
      const { membershipType } = await seedMembers(t, 60, { balance: 10 });
      const bulk = t.app.get(LedgerBulkService);
      const original = bulk.applyChunk.bind(bulk);
      // The cancel arrives while the first chunk runs (committed with it, so the test is not a race).
      const spy = jest.spyOn(bulk, 'applyChunk').mockImplementationOnce(async (s: SqlSession, chunk: BulkChunk) => {
        const result = await original(s, chunk);
        await s.exec('UPDATE quota_operations SET cancel_requested = 1 WHERE id = ?', [chunk.operationId]);
        return result;
      });
      try {
        const res = await request(t.server)
          .post(BULK)
          .set(bearer(admin))
          .send({ membership_type: membershipType, delta: 1 });
        const op = await waitForOperation(t, admin, res.body.data.operation_id as string);
        expect(op.status).toBe('cancelled');
        expect(await eventsFrom(`operation:${op.id}`)).toEqual([]);
      } finally {
        spy.mockRestore();
      }
    });
  });

  describe('hold.expired', () => {
    it('records the hold as the holds API shows it after expiry, for every subscription to the type', async () => {
      const member = await createMember(t, { maxQuota: 10 });
      const made = await request(t.server)
        .post(`/api/v1/quota/members/${member.id}/holds`)
        .set(bearer(service.token))
        .send({ amount: 4, ttl_seconds: 1, note: 'job 9' });
      expect(made.status).toBe(201);
      const id = made.body.data.hold_id as string;
      const deadline = Date.now() + 5000;
      while ((await balanceOf(t, member.id)) !== 10 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
      expect(await balanceOf(t, member.id)).toBe(10);

      const read = await request(t.server).get(HOLD(id)).set(bearer(service.token)).expect(200);
      expect(read.body.data).toMatchObject({ status: 'expired', released_amount: 4, committed_amount: 0 });
      const recorded = await events('hold.expired', ' AND source = ?', [`hold:${id}`]);
      expect(recorded).toHaveLength(1);
      expect(recorded[0].body.data).toEqual(read.body.data);
      expect(recorded[0].body.timestamp).toBe(read.body.data.settled_at);
      // Both active subscriptions to hold.expired; not the inactive one.
      await expectRecorded(recorded[0], [everything, holdsOnly]);
    });

    it('is recorded in the expiry transaction: while the event cannot be written, the hold is not expired', async () => {
      const member = await createMember(t, { maxQuota: 10 });
      const eventsRepository = t.app.get(EventsRepository);
      const original = eventsRepository.record.bind(eventsRepository);
      let refuse = true;
      let refused = 0;
      const spy = jest.spyOn(eventsRepository, 'record').mockImplementation(async (s, event) => {
        if (event.type === 'hold.expired' && refuse) {
          refused++;
          throw new Error('the event log refuses');
        }
        return original(s, event);
      });
      try {
        const made = await request(t.server)
          .post(`/api/v1/quota/members/${member.id}/holds`)
          .set(bearer(service.token))
          .send({ amount: 6, ttl_seconds: 1 });
        expect(made.status).toBe(201);
        const id = made.body.data.hold_id as string;
        const deadline = Date.now() + 5000;
        while (refused < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        expect(refused).toBeGreaterThanOrEqual(2);
        // Two sweeps expired it and failed at the event: still held in the table, nothing given back.
        const [stored] = await sql<{ status: string }>(t, 'SELECT status FROM quota_holds WHERE id = ?', [id]);
        expect(stored.status).toBe('held');
        expect(await balanceOf(t, member.id)).toBe(4);
        expect(await historyIds(member.id, 'hold_release')).toEqual([]);
        expect(await eventsFrom(`hold:${id}`)).toEqual([]);

        // Once the event can be written, the next sweep expires it, with its one event.
        refuse = false;
        while ((await balanceOf(t, member.id)) !== 10 && Date.now() < deadline + 5000)
          await new Promise((r) => setTimeout(r, 100));
        expect(await balanceOf(t, member.id)).toBe(10);
        expect(await eventsFrom(`hold:${id}`)).toEqual([{ type: 'hold.expired' }]);
        expect(await historyIds(member.id, 'hold_release')).toHaveLength(1);
      } finally {
        spy.mockRestore();
      }
    });
  });
});
