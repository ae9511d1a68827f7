import type { INestApplication } from '@nestjs/common';
import type { Server } from 'node:http';
import { Redis } from 'ioredis';
import type { DestinationStream } from 'pino';
import { createApp } from '../../src/app.factory';
import type { AppModuleOptions } from '../../src/app.module';
import { createRootLogger } from '../../src/common/logging';
import { AppConfig, loadConfig } from '../../src/config/app-config';
import { createTestDatabase, redisServer, testDriver, uniqueSuffix, type TestDatabase } from './test-database';

export const TEST_JWT_SECRET = 'test-secret-that-is-long-enough-for-every-check-0123456789';

export interface TestApp {
  readonly app: INestApplication;
  readonly server: Server;
  readonly config: AppConfig;
  readonly database: TestDatabase;
  close(): Promise<void>;
}

/** The environment a test service runs with: its own database and, on MySQL runs, Redis under its own prefix. */
export function baseTestEnv(database: TestDatabase): Record<string, string> {
  return {
    APP_ENV: 'testing',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    JWT_SECRET: TEST_JWT_SECRET,
    ...database.env,
    ...(database.driver === 'mysql'
      ? { REDIS_HOST: redisServer.host, REDIS_PORT: String(redisServer.port), REDIS_PREFIX: `test-${uniqueSuffix()}` }
      : {}),
  };
}

export interface StartOptions {
  readonly env?: Record<string, string>;
  readonly database?: TestDatabase;
  readonly extraModules?: AppModuleOptions['extraModules'];
  /** Where log lines go (set LOG_LEVEL in env too; tests are silent by default). */
  readonly logDestination?: DestinationStream;
}

/** Removes every key a test app wrote: its own prefix and the BullMQ hash-tag form of it. */
export async function deleteRedisKeys(prefix: string): Promise<void> {
  const client = new Redis({ host: redisServer.host, port: redisServer.port, lazyConnect: true });
  try {
    await client.connect();
    for (const pattern of [`${prefix}:*`, `{${prefix}}*`]) {
      let cursor = '0';
      do {
        const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
        if (keys.length > 0) await client.del(...keys);
        cursor = next;
      } while (cursor !== '0');
    }
  } finally {
    client.disconnect();
  }
}

/** Boots the real application (same factory as main.ts) on a fresh database. */
export async function startTestApp(options: StartOptions = {}): Promise<TestApp> {
  const database = options.database ?? (await createTestDatabase(testDriver));
  const config = loadConfig({ ...baseTestEnv(database), ...options.env });
  const app = await createApp(config, createRootLogger(config, options.logDestination), options.extraModules);
  return {
    app,
    server: app.getHttpServer() as Server,
    config,
    database,
    close: async () => {
      await app.close();
      if (config.redis) await deleteRedisKeys(config.redis.prefix);
      if (!options.database) await database.drop();
    },
  };
}
