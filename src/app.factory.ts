import { NotFoundException, RequestMethod, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { json, type NextFunction, type Request, type Response } from 'express';
import helmet from 'helmet';
import type { Logger } from 'pino';
import { AppModule, type AppModuleOptions } from './app.module';
import { HttpMetrics } from './metrics/http-metrics';
import { createAccessLog } from './common/access-log';
import { PinoNestLogger } from './common/logging';
import { ProblemDetailsFilter } from './common/problem-details.filter';
import { createValidationPipe } from './common/validation';
import { API_DOCS_PATH, setupApiDocs } from './openapi/setup';
import type { AppConfig } from './config/app-config';

export const API_PREFIX = 'api/v1';

const EXPOSED_HEADERS = [
  'X-Request-Id',
  'Retry-After',
  'X-Quota-Limit',
  'X-Quota-Remaining',
  'X-Quota-Reset',
  'Idempotent-Replayed',
  'X-Cache',
];

/**
 * JSON answers get the headers that matter for an API (OWASP REST Security): a CSP that allows
 * nothing and no framing, nosniff, HSTS. The browser-document headers helmet adds by default
 * (COOP, Origin-Agent-Cluster, DNS prefetch, download options, ...) would only add a kilobyte to
 * every answer; the Swagger UI pages, which are documents, keep helmet's defaults.
 */
function securityHeaders() {
  const api = helmet({
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    crossOriginOpenerPolicy: false,
    crossOriginResourcePolicy: false,
    originAgentCluster: false,
    referrerPolicy: false,
    xDnsPrefetchControl: false,
    xDownloadOptions: false,
    xFrameOptions: { action: 'deny' },
    xPermittedCrossDomainPolicies: false,
    xXssProtection: false,
  });
  const documents = helmet();
  const docsPrefix = `/${API_DOCS_PATH}`;
  return (req: Request, res: Response, next: NextFunction) =>
    (req.path.startsWith(docsPrefix) ? documents : api)(req, res, next);
}

function configureHttp(app: NestExpressApplication, config: AppConfig, logger: Logger): void {
  app.set('trust proxy', config.trustProxyHops);
  app.disable('x-powered-by');
  app.set('etag', false);
  // Order matters: the request id and access log come first so that every response, including
  // body-parser refusals, carries X-Request-Id and is logged.
  app.use(createAccessLog(logger));
  app.use(securityHeaders());
  app.use(app.get(HttpMetrics).middleware);
  if (config.role === 'worker') {
    // A worker serves only what Kubernetes and Prometheus need; every business route is 404.
    const filter = new ProblemDetailsFilter(logger);
    app.use((req: Request, res: Response, next: NextFunction) => {
      if (req.path === '/metrics' || req.path.startsWith(`/${API_PREFIX}/health`)) return next();
      filter.handle(new NotFoundException(), req, res);
    });
  }
  if (config.corsOrigins.length > 0) {
    app.enableCors({
      origin: config.corsOrigins.includes('*') ? '*' : [...config.corsOrigins],
      methods: ['GET', 'POST', 'PATCH', 'DELETE'],
      allowedHeaders: ['Authorization', 'Content-Type', 'Idempotency-Key', 'X-Request-Id'],
      exposedHeaders: EXPOSED_HEADERS,
      maxAge: 600,
    });
  }
  // Bulk adjustments carry up to 100,000 ids: their route alone gets the larger limit. A body
  // parsed here is marked as parsed, so the global parser below leaves it alone.
  app.use(`/${API_PREFIX}/admin/quota/bulk-adjust`, json({ limit: config.bulkBodyLimitBytes, strict: true }));
  app.useBodyParser('json', { limit: config.bodyLimitBytes, strict: true });
  app.setGlobalPrefix(API_PREFIX, { exclude: [{ path: 'metrics', method: RequestMethod.GET }] });
  app.useGlobalPipes(createValidationPipe());
}

/** Builds the HTTP application; main.ts and the tests share it so tests run the real wiring. */
export async function createApp(
  config: AppConfig,
  logger: Logger,
  extraModules: AppModuleOptions['extraModules'] = [],
): Promise<INestApplication> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot({ config, logger, extraModules }), {
    bodyParser: false,
    logger: new PinoNestLogger(logger),
    abortOnError: false,
  });
  configureHttp(app, config, logger);
  await app.init();
  if (config.apiDocsEnabled) setupApiDocs(app, config);
  // Paths outside the API prefix, and errors raised before Nest's router, still get problem+json.
  const filter = new ProblemDetailsFilter(logger);
  app.use((req: Request, res: Response) => filter.handle(new NotFoundException(), req, res));
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => filter.handle(err, req, res));
  return app;
}
