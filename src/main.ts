import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import type { Logger } from 'pino';
import { createApp } from './app.factory';
import { BootstrapAdmin } from './auth/bootstrap-admin';
import { createRootLogger, flushLogs } from './common/logging';
import { AppConfig, ConfigError } from './config/app-config';
import { loadConfigFromProcess } from './config/config.module';
import { describeDatabase } from './database/describe';
import { LifecycleState } from './health/lifecycle-state';
import { describeRedis } from './redis/redis.module';

function describeMode(config: AppConfig): string {
  const db = describeDatabase(config.database);
  const queue = config.redis ? describeRedis(config.redis) : 'in-process jobs (no Redis)';
  return `database: ${db}; background work: ${queue}; role: ${config.role}; env: ${config.env}`;
}

function installShutdown(app: INestApplication, config: AppConfig, logger: Logger): void {
  let started = false;
  const shutdown = async (signal: NodeJS.Signals) => {
    if (started) return;
    started = true;
    app.get(LifecycleState).beginShutdown();
    logger.info({ signal }, 'shutting down: readiness is now failing, draining in-flight work');
    const force = setTimeout(() => {
      logger.error({ timeoutMs: config.shutdown.timeoutMs }, 'graceful shutdown timed out; exiting');
      process.exit(1);
    }, config.shutdown.timeoutMs);
    force.unref();
    try {
      // Give load balancers time to see readiness fail before the listener closes.
      if (config.shutdown.drainDelayMs > 0) await new Promise((r) => setTimeout(r, config.shutdown.drainDelayMs));
      await app.close();
      logger.info('shutdown complete');
      await flushLogs(logger);
      process.exit(0);
    } catch (err) {
      logger.error({ err }, 'error during shutdown');
      await flushLogs(logger);
      process.exit(1);
    }
  };
  process.once('SIGTERM', (s) => void shutdown(s));
  process.once('SIGINT', (s) => void shutdown(s));
}

async function main(): Promise<void> {
  let config: AppConfig;
  try {
    config = loadConfigFromProcess();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`Invalid configuration: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const logger = createRootLogger(config);
  if (config.jwt.secretGenerated) {
    logger.warn('JWT_SECRET is not set: using a random secret, so tokens will not survive a restart');
  }
  logger.info(`starting quota-service; ${describeMode(config)}`);
  const app = await createApp(config, logger);
  installShutdown(app, config, logger);
  await app.listen(config.port, config.host);
  logger.info({ port: config.port, host: config.host }, `listening on http://${config.host}:${config.port}`);
  await app.get(BootstrapAdmin).hintWhenNoAdmin();
}

main().catch((err: unknown) => {
  process.stderr.write(`quota-service failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
