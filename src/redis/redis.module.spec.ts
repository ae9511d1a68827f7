import type { Logger } from 'pino';
import { redisErrorListener } from './redis.module';

describe('redisErrorListener', () => {
  afterEach(() => jest.useRealTimers());

  it('logs the message only, once per 10 s per client, and counts what it left out', () => {
    jest.useFakeTimers({ now: new Date('2026-01-01T00:00:00Z') });
    const warn = jest.fn();
    const onError = redisErrorListener({ warn } as unknown as Logger, 'queue', 'job queue (redis) error');
    const refused = Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:6379'), {
      code: 'ECONNREFUSED',
      address: '10.0.0.5',
      port: 6379,
    });

    onError(refused);
    for (let i = 0; i < 20; i++) {
      jest.advanceTimersByTime(450);
      onError(refused);
    }
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn).toHaveBeenLastCalledWith(
      { err: { message: 'connect ECONNREFUSED 10.0.0.5:6379' }, client: 'queue' },
      'job queue (redis) error',
    );

    jest.advanceTimersByTime(1_000);
    onError('not an Error');
    expect(warn).toHaveBeenCalledTimes(2);
    expect(warn).toHaveBeenLastCalledWith(
      { err: { message: 'not an Error' }, client: 'queue', suppressed: 20 },
      'job queue (redis) error',
    );
  });

  it('keeps a separate budget per client', () => {
    const warn = jest.fn();
    const logger = { warn } as unknown as Logger;
    redisErrorListener(logger, 'worker')(new Error('a'));
    redisErrorListener(logger, 'queue')(new Error('b'));
    expect(warn).toHaveBeenCalledTimes(2);
    expect(warn.mock.calls.map(([fields]) => (fields as { client: string }).client)).toEqual(['worker', 'queue']);
  });
});
