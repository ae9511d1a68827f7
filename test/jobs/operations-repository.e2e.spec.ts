import { QuotaDatabase } from '../../src/database/database';
import { OperationsRepository } from '../../src/jobs/operations.repository';
import { OperationRecorder } from '../../src/quota/ledger-bulk.service';
import { sql } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';
import { seedMembers } from './helpers';

/**
 * The operations repository against the real database (SQLite, and MariaDB with
 * DB_CONNECTION=mysql): recording, the counts chunks add, cancellation, finishing, the
 * idempotency key and the sweep's reads. The service runs as APP_ROLE=api, so no worker picks the
 * operations up while the test drives them.
 */
describe('OperationsRepository', () => {
  let t: TestApp;
  let db: QuotaDatabase;
  let repo: OperationsRepository;
  let recorder: OperationRecorder;

  beforeAll(async () => {
    t = await startTestApp({ env: { APP_ROLE: 'api' } });
    db = t.app.get(QuotaDatabase);
    repo = t.app.get(OperationsRepository);
    recorder = t.app.get(OperationRecorder);
  });
  afterAll(async () => {
    await t?.close();
  });

  async function recordBulk(memberIds: readonly string[], dedupeKey: string | null = null): Promise<string> {
    return db.transaction(async (s) => {
      const id = await recorder.record(s, {
        kind: 'bulk_adjust',
        selection: { kind: 'member_ids' },
        mode: 'delta',
        value: 5,
        reason: 'bulk_adjustment',
        note: 'repository test',
        payload: { member_ids: memberIds.length },
        requestedBy: 'test',
        total: memberIds.length,
        dedupeKey,
        requestHash: dedupeKey ? 'hash-1' : null,
      });
      const known = await repo.existingMemberIds(s, memberIds);
      expect(known.size).toBe(memberIds.length);
      await repo.addMembers(s, id, memberIds);
      return id;
    });
  }

  it('records an operation with its member list, runs it chunk by chunk and finishes it once', async () => {
    const { ids } = await seedMembers(t, 4);
    const id = await recordBulk(ids);
    const stored = await sql<{ n: unknown }>(
      t,
      'SELECT COUNT(*) AS n FROM quota_operation_members WHERE operation_id = ?',
      [id],
    );
    expect(Number(stored[0].n)).toBe(4);

    const queued = await db.read((s) => repo.findById(s, id));
    expect(queued).toMatchObject({ id, status: 'queued', total: 4, processed: 0, lastMemberId: '0', attempts: 0 });
    expect(await db.read((s) => repo.activeIdsAfter(s, String(Number(id) - 1), 10))).toContain(id);

    expect(await db.transaction((s) => repo.markRunning(s, id, new Date()))).toBe(true);
    expect(await db.read((s) => repo.findById(s, id))).toMatchObject({ status: 'running', attempts: 1 });
    const counts = await db.read((s) => repo.countActiveByKindAndStatus(s));
    const running = counts.find((c) => c.kind === 'bulk_adjust' && c.status === 'running');
    expect(Number(running?.n)).toBeGreaterThanOrEqual(1);

    // Chunks add their counts to the running operation, whichever runner applied them.
    expect(await db.transaction((s) => repo.addChunkProgress(s, id, { processed: 2, changed: 2 }, new Date()))).toBe(
      true,
    );
    expect(await db.transaction((s) => repo.addChunkProgress(s, id, { processed: 2, changed: 1 }, new Date()))).toBe(
      true,
    );
    expect(await db.read((s) => repo.findById(s, id))).toMatchObject({ status: 'running', processed: 4, changed: 3 });

    expect(await db.transaction((s) => repo.finish(s, id, 'completed', null, new Date()))).toBe(true);
    // A finished operation is not finished again, nor marked running.
    expect(await db.transaction((s) => repo.finish(s, id, 'failed', 'late', new Date()))).toBe(false);
    expect(await db.transaction((s) => repo.markRunning(s, id, new Date()))).toBe(false);
    const done = await db.read((s) => repo.findById(s, id));
    expect(done).toMatchObject({ status: 'completed', error: null, failed: 0, processed: 4 });
    // A chunk that commits after the operation ended is refused (its transaction rolls back).
    expect(await db.transaction((s) => repo.addChunkProgress(s, id, { processed: 1, changed: 1 }, new Date()))).toBe(
      false,
    );
    expect(done!.finishedAt).toBeInstanceOf(Date);
    expect(await db.read((s) => repo.activeIdsAfter(s, String(Number(id) - 1), 10))).not.toContain(id);
  });

  it('cancels a queued operation at once and asks a running one to stop', async () => {
    const { ids } = await seedMembers(t, 3);
    const queued = await recordBulk(ids.slice(0, 1));
    const running = await recordBulk(ids.slice(1));

    await db.transaction(async (s) => {
      expect(await repo.lockStatus(s, queued)).toBe('queued');
      await repo.cancelQueued(s, queued, new Date());
    });
    expect(await db.read((s) => repo.findById(s, queued))).toMatchObject({
      status: 'cancelled',
      cancelRequested: true,
    });

    await db.transaction((s) => repo.markRunning(s, running, new Date()));
    await db.transaction(async (s) => {
      expect(await repo.lockStatus(s, running)).toBe('running');
      await repo.requestCancel(s, running, new Date());
    });
    expect(await db.read((s) => repo.findById(s, running))).toMatchObject({
      status: 'running',
      cancelRequested: true,
    });
    // A failed run counts what it left undone as failed.
    expect(await db.transaction((s) => repo.finish(s, running, 'failed', 'stopped', new Date()))).toBe(true);
    expect(await db.read((s) => repo.findById(s, running))).toMatchObject({
      status: 'failed',
      error: 'stopped',
      failed: 2,
    });
    expect(await db.transaction((s) => repo.lockStatus(s, '999999999'))).toBeNull();
    expect(await db.read((s) => repo.findById(s, '999999999'))).toBeNull();
  });

  it('finds an operation by its idempotency key until the key is released, and pages by status', async () => {
    const { ids } = await seedMembers(t, 1);
    const key = `key-${Date.now().toString(36)}`;
    const id = await recordBulk(ids, key);
    const found = await db.transaction((s) => repo.lockByDedupeKey(s, key));
    expect(found).toMatchObject({ id, requestHash: 'hash-1', total: 1 });
    await db.transaction((s) => repo.releaseDedupeKey(s, id));
    expect(await db.transaction((s) => repo.lockByDedupeKey(s, key))).toBeNull();

    const page = await db.read((s) => repo.page(s, { status: 'queued', kind: 'bulk_adjust', page: 1, perPage: 100 }));
    expect(page.operations.map((o) => o.id)).toContain(id);
    expect(page.operations.every((o) => o.status === 'queued')).toBe(true);
    expect(page.total).toBeGreaterThanOrEqual(1);
    expect(await db.read((s) => repo.totalOf(s, id))).toBe(1);
  });
});
