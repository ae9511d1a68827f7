import { NotFoundException, RequestMethod, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import helmet from 'helmet';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { AppModule, type AppModuleOptions } from './app.module';
import { HttpMetrics } from './metrics/http-metrics';
import { createAccessLog } from './common/access-log';
import { registerBodyParsers } from './common/body-parsing';
import { pathOf } from './common/http';
import { PinoNestLogger } from './common/logging';
import { ProblemDetailsFilter } from './common/problem-details.filter';
import { pickRequestId } from './common/request-id';
import { createValidationPipe } from './common/validation';
import { API_DOCS_PATH, setupApiDocs } from './openapi/setup';
import type { AppConfig } from './config/app-config';

export const API_PREFIX = 'api/v1';
const BULK_ADJUST_PATH = `/${API_PREFIX}/admin/quota/bulk-adjust`;

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
  // Helmet sets its headers on the Node response; Fastify sends them with whatever it answers.
  return (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) =>
    (pathOf(req.url).startsWith(docsPrefix) ? documents : api)(req, res, next);
}

export interface ServedRoute {
  readonly method: string;
  readonly path: string;
}

/** Every route each application serves, as registered (route templates, e.g. `/api/v1/quota/members/:id`). */
const servedRoutesByServer = new WeakMap<object, ServedRoute[]>();

/** The routes an application serves, for checks that every one of them has its rules and docs. */
export function servedRoutes(app: INestApplication): readonly ServedRoute[] {
  return servedRoutesByServer.get(app.getHttpAdapter().getInstance() as object) ?? [];
}

/** The Fastify server under Nest: limits, proxy trust and request ids are set where it is built. */
function createAdapter(config: AppConfig): FastifyAdapter {
  const adapter = new FastifyAdapter({
    // Exactly TRUST_PROXY hops are trusted: request.ip is the address the nearest untrusted hop saw.
    trustProxy: (_address: string, hop: number) => hop < config.trustProxyHops,
    // The largest body any route takes; every other route is held to BODY_LIMIT (see onRoute below).
    bodyLimit: Math.max(config.bodyLimitBytes, config.bulkBodyLimitBytes),
    genReqId: pickRequestId,
    // A client gets 60 s to send a whole request (Fastify has no limit by default), so slow or
    // stalled uploads cannot hold connections open for ever.
    requestTimeout: 60_000,
    // While closing, a request still arriving on an open connection is served (with
    // Connection: close) rather than refused with a bare 503: readiness has already failed for
    // the drain delay, so these are the stragglers of clients that are moving elsewhere.
    return503OnClosing: false,
    routerOptions: { ignoreTrailingSlash: true },
    // Nest middleware is not used; the HTTP concerns below are Fastify hooks.
    skipMiddie: true,
  });
  const fastify = adapter.getInstance();
  const served: ServedRoute[] = [];
  servedRoutesByServer.set(fastify, served);
  // Bulk adjustments carry up to 100,000 ids: their route alone gets the larger limit.
  fastify.addHook('onRoute', (route) => {
    route.bodyLimit = route.url === BULK_ADJUST_PATH ? config.bulkBodyLimitBytes : config.bodyLimitBytes;
    for (const method of [route.method].flat()) served.push({ method, path: route.url });
  });
  return adapter;
}

function configureHttp(app: NestFastifyApplication, config: AppConfig, logger: Logger): void {
  const fastify = app.getHttpAdapter().getInstance();
  // Order matters: the request id and access log come first so that every response, including
  // body-parser refusals, carries X-Request-Id and is logged.
  const accessLog = createAccessLog(logger);
  const headers = securityHeaders();
  fastify.addHook('onRequest', (request, reply, done) => {
    accessLog(request, reply);
    headers(request.raw, reply.raw, (err) => done(err as Error | undefined));
  });
  const metrics = app.get(HttpMetrics);
  fastify.addHook('onResponse', (request, reply, done) => {
    metrics.observe(request, reply);
    done();
  });
  if (config.role === 'worker') {
    // A worker serves only what Kubernetes and Prometheus need; every business route is 404.
    const filter = new ProblemDetailsFilter(logger);
    fastify.addHook('onRequest', (request, reply, done) => {
      const path = pathOf(request.url);
      if (path === '/metrics' || path.startsWith(`/${API_PREFIX}/health`)) return done();
      filter.handle(new NotFoundException(), request, reply);
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
  registerBodyParsers(app);
  app.setGlobalPrefix(API_PREFIX, { exclude: [{ path: 'metrics', method: RequestMethod.GET }] });
  app.useGlobalPipes(createValidationPipe());
}

/** Builds the HTTP application; main.ts and the tests share it so tests run the real wiring. */
export async function createApp(
  config: AppConfig,
  logger: Logger,
  extraModules: AppModuleOptions['extraModules'] = [],
): Promise<INestApplication> {
  const app = await NestFactory.create<NestFastifyApplication>(
    AppModule.forRoot({ config, logger, extraModules }),
    createAdapter(config),
    { logger: new PinoNestLogger(logger), abortOnError: false },
  );
  configureHttp(app, config, logger);
  if (config.apiDocsEnabled) setupApiDocs(app, config);
  await app.init();
  // Routes are fixed from here on; the server answers (tests use it without listening).
  await app.getHttpAdapter().getInstance().ready();
  return app;
}
