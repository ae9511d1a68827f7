import type { Role } from '../../src/auth/principal';
import { QUOTA_ROUTE_RULES } from './route-rules.quota';

/**
 * Every route the service exposes and who may call it. The role-matrix suite checks each rule
 * and fails when the application has a route that is missing here.
 */
export interface RouteRule {
  readonly method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** Express-style path with :params, including the /api/v1 prefix. */
  readonly path: string;
  readonly allowed: readonly Role[] | 'public';
}

export const BASE_ROUTE_RULES: readonly RouteRule[] = [
  { method: 'GET', path: '/api/v1/health', allowed: 'public' },
  { method: 'GET', path: '/api/v1/health/live', allowed: 'public' },
  { method: 'GET', path: '/api/v1/health/ready', allowed: 'public' },
];

export const ROUTE_RULES: readonly RouteRule[] = [...BASE_ROUTE_RULES, ...QUOTA_ROUTE_RULES];
