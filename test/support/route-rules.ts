import type { INestApplication } from '@nestjs/common';
import { servedRoutes } from '../../src/app.factory';
import type { Role } from '../../src/auth/principal';
import { ANALYTICS_ROUTE_RULES } from './route-rules.analytics';
import { JOBS_ROUTE_RULES } from './route-rules.jobs';
import { MAINTENANCE_ROUTE_RULES } from './route-rules.maintenance';
import { QUOTA_ROUTE_RULES } from './route-rules.quota';
import { WEBHOOKS_ROUTE_RULES } from './route-rules.webhooks';

/**
 * Every route the service exposes and who may call it. The role-matrix suite checks each rule
 * and fails when the application has a route that is missing here.
 */
export interface RouteRule {
  readonly method: 'GET' | 'POST' | 'PATCH' | 'DELETE' | 'PUT';
  /** Express-style path with :params, including the /api/v1 prefix. */
  readonly path: string;
  readonly allowed: readonly Role[] | 'public';
}

export const BASE_ROUTE_RULES: readonly RouteRule[] = [
  { method: 'GET', path: '/api/v1/health', allowed: 'public' },
  { method: 'GET', path: '/api/v1/health/live', allowed: 'public' },
  { method: 'GET', path: '/api/v1/health/ready', allowed: 'public' },
  { method: 'GET', path: '/metrics', allowed: 'public' },
  { method: 'POST', path: '/api/v1/auth/login', allowed: 'public' },
  { method: 'GET', path: '/api/v1/auth/me', allowed: ['admin', 'operator', 'service', 'member'] },
  { method: 'GET', path: '/api/v1/admin/users', allowed: ['admin'] },
  { method: 'POST', path: '/api/v1/admin/users', allowed: ['admin'] },
  { method: 'PATCH', path: '/api/v1/admin/users/:id', allowed: ['admin'] },
  // Swagger UI and the OpenAPI document (plain Express routes, served unless API_DOCS_ENABLED=false).
  ...[
    '/api/docs',
    '/api/docs/',
    '/api/docs/index.html',
    '/api/docs/swagger-ui-init.js',
    '/api/docs/docs/swagger-ui-init.js',
    '/api/docs/LICENSE',
    '/api/docs-json',
  ].map((path) => ({ method: 'GET' as const, path, allowed: 'public' as const })),
];

export const ROUTE_RULES: readonly RouteRule[] = [
  ...BASE_ROUTE_RULES,
  ...QUOTA_ROUTE_RULES,
  ...JOBS_ROUTE_RULES,
  ...ANALYTICS_ROUTE_RULES,
  ...WEBHOOKS_ROUTE_RULES,
  ...MAINTENANCE_ROUTE_RULES,
];

export interface AppRoute {
  readonly method: string;
  readonly path: string;
}

/**
 * The routes the running application really serves. Fastify's automatic HEAD twins of GET routes
 * and Nest's catch-all not-found routes are not routes of the API.
 */
export function listAppRoutes(app: INestApplication): AppRoute[] {
  return servedRoutes(app).filter((route) => route.method !== 'HEAD' && !route.path.includes('*'));
}

export const routeKey = (route: { method: string; path: string }) => `${route.method} ${route.path}`;
