import type { INestApplication } from '@nestjs/common';
import { SwaggerModule } from '@nestjs/swagger';
import type { AppConfig } from '../config/app-config';
import { buildOpenApiDocument } from './document';

export const API_DOCS_PATH = 'api/docs';

/**
 * Swagger UI at /api/docs and the document at /api/docs-json. These are plain Fastify routes
 * outside Nest's router, so the access guard does not apply: they are public, and not rate
 * limited. The document is built on first request, not at boot.
 */
export function setupApiDocs(app: INestApplication, config: AppConfig): void {
  SwaggerModule.setup(API_DOCS_PATH, app, () => buildOpenApiDocument(app, { serverUrl: config.url }), {
    raw: ['json'],
    customSiteTitle: 'Quota service API',
  });
}
