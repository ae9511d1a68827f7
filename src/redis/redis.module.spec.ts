import type { Logger } from 'pino';
import type { RedisConfig } from '../config/app-config';
import { describeRedis, redisErrorListener, standaloneOptions } from './redis.module';

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

describe('Redis topology options', () => {
  const base = { password: 'pw', db: 0, prefix: 'quota', tls: undefined };
  const single: RedisConfig = { ...base, topology: { kind: 'single', host: 'cache', port: 6380 } };
  const cluster: RedisConfig = {
    ...base,
    topology: {
      kind: 'cluster',
      nodes: [
        { host: 'a', port: 7000 },
        { host: 'b', port: 7001 },
        { host: 'c', port: 7002 },
      ],
    },
  };
  const sentinel: RedisConfig = {
    ...base,
    db: 2,
    topology: {
      kind: 'sentinel',
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26379 },
        { host: 's3', port: 26379 },
      ],
      name: 'mymaster',
      sentinelPassword: 'spw',
    },
  };

  it('names the target in the start-up line', () => {
    expect(describeRedis(single)).toBe('Redis cache:6380 (plain)');
    expect(describeRedis(cluster)).toBe('Redis Cluster (3 seed nodes) (plain)');
    expect(describeRedis(sentinel)).toBe('Redis Sentinel mymaster via 3 sentinels (plain)');
    const tls = { ca: undefined, caFile: undefined, rejectUnauthorized: true };
    expect(describeRedis({ ...sentinel, tls })).toBe('Redis Sentinel mymaster via 3 sentinels (TLS, built-in CAs)');
  });

  it('reaches a Sentinel master through the sentinels, with the data nodes’ password and database', () => {
    expect(standaloneOptions(single, 'main')).toMatchObject({ host: 'cache', port: 6380, password: 'pw', db: 0 });
    const options = standaloneOptions(sentinel, 'main');
    expect(options).toMatchObject({
      name: 'mymaster',
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26379 },
        { host: 's3', port: 26379 },
      ],
      sentinelPassword: 'spw',
      password: 'pw',
      db: 2,
      enableTLSForSentinelMode: false,
      failoverDetector: true,
      connectionName: 'quota-service:main',
    });
    expect(options.host).toBeUndefined();
    const reconnect = options.reconnectOnError as (err: Error) => boolean | 1 | 2;
    expect(reconnect(new Error("READONLY You can't write against a read only replica."))).toBe(2);
    expect(reconnect(new Error('ERR unknown command'))).toBe(false);
    expect(() => standaloneOptions(cluster, 'main')).toThrow(/clusterClient/);
  });
});
