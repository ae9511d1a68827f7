import { FreshReads } from './fresh-reads';

/** A read whose answers the test releases one at a time, recording when each read started. */
function controlledReads() {
  const started: Array<{ key: string; resolve(v: string): void; reject(e: unknown): void }> = [];
  const reads = new FreshReads<string, string>(
    (key) =>
      new Promise<string>((resolve, reject) => {
        started.push({ key, resolve, reject });
      }),
  );
  return { reads, started };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('FreshReads', () => {
  it('starts a lone caller’s read at once and hands it the answer', async () => {
    const { reads, started } = controlledReads();
    const answer = reads.get('a');
    expect(started).toHaveLength(1);
    started[0].resolve('v1');
    await expect(answer).resolves.toBe('v1');
    expect(reads.inFlight).toBe(0);
  });

  it('never gives a caller the answer of a read that started before it arrived', async () => {
    const { reads, started } = controlledReads();
    const first = reads.get('a');
    const second = reads.get('a');
    const third = reads.get('a');
    // One read in flight for the first caller; the two later ones wait for the next read.
    expect(started).toHaveLength(1);
    started[0].resolve('before');
    await expect(first).resolves.toBe('before');
    await settle();
    expect(started).toHaveLength(2);
    started[1].resolve('after');
    await expect(second).resolves.toBe('after');
    await expect(third).resolves.toBe('after');
    expect(started).toHaveLength(2);
    await settle();
    expect(reads.inFlight).toBe(0);
  });

  it('keeps at most one read in flight per key and reads keys independently', async () => {
    const { reads, started } = controlledReads();
    const answers = [reads.get('a'), reads.get('b'), reads.get('a'), reads.get('b'), reads.get('a')];
    expect(started.map((s) => s.key)).toEqual(['a', 'b']);
    started[0].resolve('a1');
    started[1].resolve('b1');
    await settle();
    expect(started.map((s) => s.key)).toEqual(['a', 'b', 'a', 'b']);
    started[2].resolve('a2');
    started[3].resolve('b2');
    await expect(Promise.all(answers)).resolves.toEqual(['a1', 'b1', 'a2', 'b2', 'a2']);
  });

  it('rejects every caller sharing a failed read, and the next caller reads again', async () => {
    const { reads, started } = controlledReads();
    const first = reads.get('a');
    const second = reads.get('a');
    const third = reads.get('a');
    started[0].resolve('ok');
    await expect(first).resolves.toBe('ok');
    await settle();
    started[1].reject(new Error('database away'));
    await expect(second).rejects.toThrow('database away');
    await expect(third).rejects.toThrow('database away');
    await settle();
    expect(reads.inFlight).toBe(0);
    const fourth = reads.get('a');
    expect(started).toHaveLength(3);
    started[2].resolve('back');
    await expect(fourth).resolves.toBe('back');
  });

  it('turns a read that throws synchronously into a rejection', async () => {
    const reads = new FreshReads<string, string>(() => {
      throw new Error('no connection');
    });
    await expect(reads.get('a')).rejects.toThrow('no connection');
    expect(reads.inFlight).toBe(0);
  });
});
