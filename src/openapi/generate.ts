import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createApp } from '../app.factory';
import { createRootLogger } from '../common/logging';
import { loadConfig } from '../config/app-config';
import { buildOpenApiDocument, serializeDocument } from './document';

/** The committed document describes the product, so it is built on a fixed embedded setup, never the caller's env. */
export const OPENAPI_GENERATION_ENV: Readonly<Record<string, string>> = {
  APP_ENV: 'local',
  APP_ROLE: 'api',
  LOG_LEVEL: 'silent',
  DB_CONNECTION: 'sqlite',
  DB_DATABASE: ':memory:',
  API_DOCS_ENABLED: 'false',
};

export async function generateOpenApiJson(): Promise<string> {
  const config = loadConfig(OPENAPI_GENERATION_ENV, () => randomBytes(48).toString('base64url'));
  const app = await createApp(config, createRootLogger(config));
  try {
    return serializeDocument(buildOpenApiDocument(app));
  } finally {
    await app.close();
  }
}

/** `npm run openapi [-- <file>]`: writes openapi.json at the repository root. */
async function main(): Promise<void> {
  const target = resolve(process.argv[2] ?? join(process.cwd(), 'openapi.json'));
  writeFileSync(target, await generateOpenApiJson());
  process.stdout.write(`wrote ${target}\n`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`openapi: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
}
