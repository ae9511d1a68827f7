import type { INestApplication } from '@nestjs/common';
import type { Server } from 'node:http';
import { Redis } from 'ioredis';
import type { DestinationStream } from 'pino';
import { createApp } from '../../src/app.factory';
import type { AppModuleOptions } from '../../src/app.module';
import { createRootLogger } from '../../src/common/logging';
import { AppConfig, loadConfig } from '../../src/config/app-config';
import { takeViolations, watchResponses } from '../openapi/response-check';
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
  /**
   * Check every response against openapi.json (on by default; see test/openapi/response-check.ts).
   * A suite that sends what no client can (a broken socket, a faked dependency) may turn it off.
   */
  readonly checkResponses?: boolean;
}

/** Removes every key a test app wrote: its own prefix and the BullMQ hash-tag form of it. */
export async function deleteRedisKeys(prefix: string): Promise<void> {
  const client = new Redis({ host: redisServer.host, port: redisServer.port, lazyConnect: true });
  try {
    await client.connect();
    for (const pattern of [`${prefix}:*`, `{${prefix}}*`, `{${prefix}:*`]) {
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
  const server = app.getHttpServer() as Server;
  // A worker serves only the probes and metrics; its 404 elsewhere is not an answer of the API.
  const servesOperation = (path: string) =>
    config.role !== 'worker' || path === '/metrics' || path.startsWith('/api/v1/health');
  const watch = options.checkResponses === false ? undefined : watchResponses(server, { servesOperation });
  return {
    app,
    server,
    config,
    database,
    close: async () => {
      watch?.stop();
      await app.close();
      // Servers a suite starts itself (a Cluster, a Sentinel set) go away with their data.
      if (config.redis?.topology.kind === 'single') await deleteRedisKeys(config.redis.prefix);
      if (!options.database) await database.drop();
      // Answers given outside a test (in beforeAll/afterAll) are reported here.
      const violations = takeViolations();
      if (violations) throw violations;
    },
  };
}
