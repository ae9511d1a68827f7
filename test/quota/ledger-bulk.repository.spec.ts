import { QuotaDatabase } from '../../src/database/database';
import { IdempotencyService } from '../../src/quota/idempotency.service';
import { LedgerBulkRepository } from '../../src/quota/ledger-bulk.repository';
import { LedgerBulkService, OperationRecorder, type BulkChunk } from '../../src/quota/ledger-bulk.service';
import { MAX_BALANCE } from '../../src/quota/ledger.service';
import { startTestApp, type TestApp } from '../support/test-app';
import { balanceOf, createConfig, createMember, historyOf, sql } from '../support/quota-factories';

/**
 * Bulk chunks below the job queue, on the run's database: a chunk changes its members exactly
 * once, a retried chunk is a no-op, and the cursor walks the selection to its end.
 */
describe('bulk ledger repository and service', () => {
  let t: TestApp;
  let db: QuotaDatabase;
  let bulk: LedgerBulkService;
  let repository: LedgerBulkRepository;
  let recorder: OperationRecorder;

  beforeAll(async () => {
    t = await startTestApp();
    db = t.app.get(QuotaDatabase);
    bulk = t.app.get(LedgerBulkService);
    repository = t.app.get(LedgerBulkRepository);
    recorder = t.app.get(OperationRecorder);
  });

  afterAll(async () => {
    await t.close();
  });

  /** A type with `count` members of balance 10, and an operation over the type (recorded, never announced). */
  async function setUp(count: number, mode: 'delta' | 'set', value: number) {
    const config = await createConfig(t, { maxQuota: 10 });
    const members: string[] = [];
    for (let i = 0; i < count; i++) members.push((await createMember(t, { membershipType: config.membershipType })).id);
    const selection = { kind: 'membership_type' as const, membershipType: config.membershipType };
    const operationId = await db.transaction((s) =>
      recorder.record(s, {
        kind: 'bulk_adjust',
        selection,
        mode,
        value,
        reason: 'bulk_adjustment',
        note: 'bulk test',
        payload: {},
        requestedBy: 'admin',
      }),
    );
    const chunk = (afterId: string, limit: number): BulkChunk => ({
      operationId,
      selection,
      afterId,
      limit,
      mode,
      value,
      reason: 'bulk_adjustment',
      actor: 'admin',
      note: 'bulk test',
    });
    return { members, operationId, chunk };
  }

  const rowsOf = async (operationId: string) =>
    Number(
      (
        await sql<{ n: unknown }>(t, 'SELECT COUNT(*) AS n FROM member_quota_history WHERE operation_id = ?', [
          operationId,
        ])
      )[0].n,
    );

  it('records the operation with the size of its selection', async () => {
    const { operationId } = await setUp(3, 'delta', 1);
    const [row] = await sql<{ status: string; total: unknown; last_member_id: unknown }>(
      t,
      'SELECT status, total, last_member_id FROM quota_operations WHERE id = ?',
      [operationId],
    );
    expect({ ...row, total: Number(row.total), last_member_id: Number(row.last_member_id) }).toEqual({
      status: 'queued',
      total: 3,
      last_member_id: 0,
    });
  });

  it('applies a chunk exactly once: a retried chunk writes nothing and changes no balance', async () => {
    const { members, operationId, chunk } = await setUp(3, 'delta', 5);
    const first = await db.transaction((s) => bulk.applyChunk(s, chunk('0', 2)));
    expect(first).toEqual({ processed: 2, written: 2, changed: 2, lastMemberId: members[1] });
    expect(await Promise.all(members.map((id) => balanceOf(t, id)))).toEqual([15, 15, 10]);

    const retried = await db.transaction((s) => bulk.applyChunk(s, chunk('0', 2)));
    expect(retried).toEqual({ processed: 2, written: 0, changed: 0, lastMemberId: members[1] });
    expect(await Promise.all(members.map((id) => balanceOf(t, id)))).toEqual([15, 15, 10]);
    expect(await rowsOf(operationId)).toBe(2);

    const next = await db.transaction((s) => bulk.applyChunk(s, chunk(members[1], 2)));
    expect(next).toEqual({ processed: 1, written: 1, changed: 1, lastMemberId: members[2] });
    const done = await db.transaction((s) => bulk.applyChunk(s, chunk(members[2], 2)));
    expect(done).toEqual({ processed: 0, written: 0, changed: 0, lastMemberId: null });

    expect(await Promise.all(members.map((id) => balanceOf(t, id)))).toEqual([15, 15, 15]);
    for (const id of members) {
      const history = await historyOf(t, id);
      expect(history.map((h) => [h.reason, h.delta, h.balance_after])).toEqual([
        ['initial_grant', 10, 10],
        ['bulk_adjustment', 5, 15],
      ]);
    }
  });

  it('skips the members an interrupted attempt did, and does the rest', async () => {
    const { members, operationId, chunk } = await setUp(3, 'delta', -4);
    // An earlier attempt wrote the first member and committed, then stopped.
    await db.transaction((s) => repository.writeChunk(s, chunk('0', 3), [members[0]]));
    const result = await db.transaction((s) => bulk.applyChunk(s, chunk('0', 3)));
    expect(result).toEqual({ processed: 3, written: 2, changed: 2, lastMemberId: members[2] });
    expect(await Promise.all(members.map((id) => balanceOf(t, id)))).toEqual([6, 6, 6]);
    expect(await rowsOf(operationId)).toBe(3);
  });

  it('rolls a failed chunk back whole, so its retry applies it', async () => {
    const { members, operationId, chunk } = await setUp(2, 'set', 3);
    await expect(
      db.transaction(async (s) => {
        await bulk.applyChunk(s, chunk('0', 2));
        throw new Error('worker lost');
      }),
    ).rejects.toThrow('worker lost');
    expect(await Promise.all(members.map((id) => balanceOf(t, id)))).toEqual([10, 10]);
    expect(await rowsOf(operationId)).toBe(0);
    const retried = await db.transaction((s) => bulk.applyChunk(s, chunk('0', 2)));
    expect(retried).toEqual({ processed: 2, written: 2, changed: 2, lastMemberId: members[1] });
    expect(await Promise.all(members.map((id) => balanceOf(t, id)))).toEqual([3, 3]);
  });

  it('floors at 0 and caps at 2^31-1, counting only rows that changed', async () => {
    const { members, chunk } = await setUp(2, 'delta', -25);
    await sql(t, 'UPDATE members SET quota_balance = 0 WHERE id = ?', [members[1]]);
    const result = await db.transaction((s) => bulk.applyChunk(s, chunk('0', 10)));
    expect(result).toEqual({ processed: 2, written: 2, changed: 1, lastMemberId: members[1] });
    expect(await Promise.all(members.map((id) => balanceOf(t, id)))).toEqual([0, 0]);

    const capped = await setUp(1, 'delta', 5);
    await sql(t, 'UPDATE members SET quota_balance = ? WHERE id = ?', [MAX_BALANCE - 1, capped.members[0]]);
    await db.transaction((s) => bulk.applyChunk(s, capped.chunk('0', 10)));
    expect(await balanceOf(t, capped.members[0])).toBe(MAX_BALANCE);
    expect((await historyOf(t, capped.members[0])).pop()).toEqual(
      expect.objectContaining({ delta: 1, balance_after: MAX_BALANCE }),
    );

    const floored = await setUp(1, 'set', -5);
    await db.transaction((s) => bulk.applyChunk(s, floored.chunk('0', 10)));
    expect(await balanceOf(t, floored.members[0])).toBe(0);
  });

  it('never lets a consume and a chunk on the same member lose either change', async () => {
    const { members, chunk } = await setUp(1, 'delta', 5);
    const changes = t.app.get(IdempotencyService);
    await Promise.all([
      db.transaction((s) => bulk.applyChunk(s, chunk('0', 10))),
      changes.runChange(null, {
        memberId: members[0],
        delta: -3,
        reason: 'consumption',
        actor: 'user-1',
        requireActive: true,
      }),
    ]);
    expect(await balanceOf(t, members[0])).toBe(12);
    const history = await historyOf(t, members[0]);
    expect(history.reduce((sum, h) => sum + h.delta, 0)).toBe(12);
  });
});
