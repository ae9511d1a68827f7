import { QuotaDatabase } from '../../src/database/database';
import { EventsRepository } from '../../src/events/events.repository';
import { OperationChunksRepository } from '../../src/jobs/operation-chunks.repository';
import { OperationRunner } from '../../src/jobs/operation-runner.service';
import { OperationsRepository } from '../../src/jobs/operations.repository';
import { OperationRecorder } from '../../src/quota/ledger-bulk.service';
import { createMember, ledgerReport, sql } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';
import { rowsPerMember, seedMembers } from './helpers';

const CHUNK = 10;

interface ChunkRow {
  id: string;
  from: string;
  to: string | null;
  status: string;
  attempts: number;
  claimedBy: string | null;
  processed: number;
}

/**
 * An operation's chunks against the real database (SQLite, and MariaDB with DB_CONNECTION=mysql):
 * the plan, claims and leases, several runs on one operation, splitting, cancel and the single
 * finish. The service runs as APP_ROLE=api, so only the runs the test starts touch the operations.
 */
describe('operation chunks: plan, claim, apply, finish', () => {
  let t: TestApp;
  let db: QuotaDatabase;
  let chunks: OperationChunksRepository;
  let operations: OperationsRepository;
  let runner: OperationRunner;
  let recorder: OperationRecorder;

  beforeAll(async () => {
    t = await startTestApp({ env: { APP_ROLE: 'api', JOBS_CHUNK_SIZE: String(CHUNK), JOBS_LOCK_DURATION_MS: '1000' } });
    db = t.app.get(QuotaDatabase);
    chunks = t.app.get(OperationChunksRepository);
    operations = t.app.get(OperationsRepository);
    runner = t.app.get(OperationRunner);
    recorder = t.app.get(OperationRecorder);
  });
  afterAll(async () => {
    await t?.close();
  });

  function recordByType(membershipType: string, delta: number): Promise<string> {
    return db.transaction((s) =>
      recorder.record(s, {
        kind: 'bulk_adjust',
        selection: { kind: 'membership_type', membershipType },
        mode: 'delta',
        value: delta,
        reason: 'bulk_adjustment',
        note: 'chunks test',
        payload: { membership_type: membershipType },
        requestedBy: 'test',
      }),
    );
  }

  async function chunkRows(operationId: string): Promise<ChunkRow[]> {
    const rows = await sql<{
      id: unknown;
      from_member_id: unknown;
      to_member_id: string | number | null;
      status: string;
      attempts: unknown;
      claimed_by: string | null;
      processed: unknown;
    }>(
      t,
      `SELECT id, from_member_id, to_member_id, status, attempts, claimed_by, processed
         FROM quota_operation_chunks WHERE operation_id = ? ORDER BY from_member_id`,
      [operationId],
    );
    return rows.map((r) => ({
      id: String(r.id),
      from: String(r.from_member_id),
      to: r.to_member_id === null ? null : String(r.to_member_id),
      status: r.status,
      attempts: Number(r.attempts),
      claimedBy: r.claimed_by,
      processed: Number(r.processed),
    }));
  }

  async function operation(id: string) {
    return (await db.read((s) => operations.findById(s, id)))!;
  }

  it('plans ranges of JOBS_CHUNK_SIZE members (the last open-ended), once; several runs apply each member once and one finishes', async () => {
    const { ids, membershipType } = await seedMembers(t, 95, { balance: 10 });
    const id = await recordByType(membershipType, 3);
    const record = jest.spyOn(t.app.get(EventsRepository), 'record');
    try {
      // Four runs at once: the lead plans, three helpers join as soon as there is a plan.
      await runner.run(id, {
        finalAttempt: true,
        lead: true,
        onPlanned: async (pending) => {
          expect(pending).toBe(10);
          await Promise.all([1, 2, 3].map(() => runner.run(id, { finalAttempt: false, lead: false })));
        },
      });
      const finishedEvents = record.mock.calls.filter(([, event]) => event.source === `operation:${id}`);
      expect(finishedEvents.map(([, event]) => event.type)).toEqual(['operation.completed']);
    } finally {
      record.mockRestore();
    }

    expect(await operation(id)).toMatchObject({ status: 'completed', total: 95, processed: 95, changed: 95 });
    const planned = await chunkRows(id);
    expect(planned.map((c) => [c.from, c.to])).toEqual([
      ['0', ids[9]],
      ...Array.from({ length: 8 }, (_, i) => [ids[i * 10 + 9], ids[i * 10 + 19]]),
      [ids[89], null],
    ]);
    expect(planned.every((c) => c.status === 'done' && c.attempts === 1)).toBe(true);
    expect(planned.map((c) => c.processed)).toEqual([10, 10, 10, 10, 10, 10, 10, 10, 10, 5]);
    // Different runs took chunks (each claim names its run).
    expect(new Set(planned.map((c) => c.claimedBy)).size).toBeGreaterThan(1);
    const perMember = await rowsPerMember(t, id);
    expect(ids.map((m) => perMember.get(m))).toEqual(ids.map(() => 1));
    const balances = await sql<{ quota_balance: unknown }>(
      t,
      'SELECT quota_balance FROM members WHERE membership_type = ?',
      [membershipType],
    );
    expect(balances.map((b) => Number(b.quota_balance))).toEqual(ids.map(() => 13));

    // Run again (a duplicate job, the sweep): nothing is planned or applied twice.
    await runner.run(id, { finalAttempt: true, lead: true });
    expect(await chunkRows(id)).toEqual(planned);
    expect((await rowsPerMember(t, id)).get(ids[0])).toBe(1);
    expect((await ledgerReport(t)).mismatches).toEqual([]);
  });

  it('a claim holds a chunk until its lease lapses; then another run takes it and the first applies nothing', async () => {
    const { membershipType } = await seedMembers(t, 25, { balance: 10 });
    const id = await recordByType(membershipType, 1);
    await db.transaction(async (s) => {
      await operations.markRunning(s, id, new Date());
      await chunks.insert(
        s,
        id,
        [
          { fromMemberId: '0', toMemberId: null },
          { fromMemberId: '999999999999', toMemberId: null },
        ],
        new Date(),
      );
    });
    const now = new Date();
    const soon = new Date(now.getTime() + 60_000);
    const first = await db.transaction((s) => chunks.claim(s, id, 'run-a', now, soon));
    const second = await db.transaction((s) => chunks.claim(s, id, 'run-b', now, soon));
    expect(first).toMatchObject({ fromMemberId: '0', attempt: 1 });
    expect(second).toMatchObject({ fromMemberId: '999999999999', attempt: 1 });
    // Both leased: nothing left to claim now.
    expect(await db.transaction((s) => chunks.claim(s, id, 'run-c', now, soon))).toBeNull();
    expect(await db.read((s) => chunks.counts(s, id))).toEqual({ planned: 2, pending: 2 });

    // Past the lease, run-c takes the first chunk over; run-a's claim is no longer good.
    const later = new Date(now.getTime() + 61_000);
    const takeover = await db.transaction((s) =>
      chunks.claim(s, id, 'run-c', later, new Date(later.getTime() + 60_000)),
    );
    expect(takeover).toMatchObject({ id: first!.id, attempt: 2 });
    expect(await db.transaction((s) => chunks.lockClaimed(s, first!.id, 'run-a'))).toBe(false);
    expect(await db.transaction((s) => chunks.lockClaimed(s, first!.id, 'run-c'))).toBe(true);

    // A handed-back chunk is free at once; a done one is never claimed again.
    await db.transaction((s) => chunks.release(s, first!.id, 'run-c', later));
    const again = await db.transaction((s) => chunks.claim(s, id, 'run-d', later, new Date(later.getTime() + 1)));
    expect(again).toMatchObject({ id: first!.id, attempt: 3 });
    await db.transaction((s) => chunks.markDone(s, first!.id, { processed: 0, changed: 0 }, later));
    expect(await db.transaction((s) => chunks.lockClaimed(s, first!.id, 'run-d'))).toBe(false);
    const afterAll = new Date(later.getTime() + 120_000);
    expect(await db.transaction((s) => chunks.claim(s, id, 'run-e', afterAll, afterAll))).toMatchObject({
      id: second!.id,
    });
    expect(await db.read((s) => chunks.counts(s, id))).toEqual({ planned: 2, pending: 1 });
  });

  it('a range holding more members than a chunk is split; members created during the run are covered', async () => {
    const { ids, membershipType } = await seedMembers(t, 12, { balance: 10 });
    const id = await recordByType(membershipType, 2);
    // Planned with the 12 members: one full range, one open-ended range of 2.
    await runner.run(id, {
      finalAttempt: true,
      lead: true,
      onPlanned: async () => {
        // Created after planning: the open-ended range now holds 2 + 15 members.
        for (let i = 0; i < 15; i++) await createMember(t, { membershipType, initialQuota: 10 });
      },
    });
    const rows = await chunkRows(id);
    expect(rows.map((c) => c.processed)).toEqual([10, 10, 7]);
    expect(rows[0]).toMatchObject({ from: '0', to: ids[9] });
    expect(rows[2].to).toBeNull();
    const op = await operation(id);
    expect(op).toMatchObject({ status: 'completed', processed: 27 });
    const perMember = await rowsPerMember(t, id);
    expect([...perMember.values()]).toEqual(new Array(27).fill(1));
    expect((await ledgerReport(t)).mismatches).toEqual([]);
  });

  it('a chunk whose operation was cancelled meanwhile is rolled back; the run stops and the operation ends cancelled', async () => {
    const { ids, membershipType } = await seedMembers(t, 30, { balance: 10 });
    const id = await recordByType(membershipType, 5);
    // The run's second chunk is claimed, then the operation is cancelled and finished elsewhere
    // (another process) before the chunk's transaction ends.
    const internals = runner as unknown as { applyWithRetries: (...args: unknown[]) => Promise<void> };
    const original = internals.applyWithRetries.bind(runner);
    let applied = 0;
    const spy = jest.spyOn(internals, 'applyWithRetries').mockImplementation(async (...args: unknown[]) => {
      applied++;
      if (applied === 2) await db.transaction((s) => operations.finish(s, id, 'cancelled', null, new Date()));
      return original(...args);
    });
    try {
      await runner.run(id, { finalAttempt: true, lead: true });
    } finally {
      spy.mockRestore();
    }
    expect(applied).toBe(2);
    expect(await operation(id)).toMatchObject({ status: 'cancelled', processed: 10 });
    const perMember = await rowsPerMember(t, id);
    expect(perMember.size).toBe(10);
    expect(ids.slice(0, 10).every((m) => perMember.get(m) === 1)).toBe(true);
    expect((await chunkRows(id)).map((c) => c.status)).toEqual(['done', 'pending', 'pending', 'pending']);
    expect((await ledgerReport(t)).mismatches).toEqual([]);
  });
});
