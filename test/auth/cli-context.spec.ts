import { DataSource } from 'typeorm';
import { AuditLogEntry } from '../../src/audit/audit-log.entity';
import { UsersService } from '../../src/auth/users.service';
import { createCliContext } from '../../src/cli/cli.module';
import { loadConfig } from '../../src/config/app-config';
import { RedisConnection } from '../../src/redis/redis.module';
import { baseTestEnv } from '../support/test-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';

describe('the CLI application context', () => {
  let database: TestDatabase;

  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.drop();
  });

  it("builds the commands' services through Nest, applies migrations when asked, and nothing of the server", async () => {
    const config = loadConfig({ ...baseTestEnv(database), REDIS_HOST: '127.0.0.1', REDIS_PORT: '6379' });
    const context = await createCliContext(config, { runMigrations: true });
    try {
      const user = await context
        .get(UsersService)
        .create('system', { email: 'ctx@example.com', password: 'long-enough-password', role: 'admin' });
      expect(user.email).toBe('ctx@example.com');
      const audit = await context
        .get(DataSource)
        .getRepository(AuditLogEntry)
        .findBy({ entityId: String(user.id) });
      expect(audit).toEqual([expect.objectContaining({ action: 'user.create', actorLabel: 'system' })]);
      // No Redis client, no HTTP server, no workers: only what the commands use is in the context.
      expect(() => context.get(RedisConnection, { strict: false })).toThrow();
    } finally {
      await context.close();
    }
  });
});
