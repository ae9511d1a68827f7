import type { RouteRule } from './route-rules';

const READERS = ['admin', 'operator'] as const;

/** Routes of the jobs module (bulk adjust, operations). */
export const JOBS_ROUTE_RULES: readonly RouteRule[] = [
  { method: 'POST', path: '/api/v1/admin/quota/bulk-adjust', allowed: ['admin'] },
  { method: 'GET', path: '/api/v1/admin/quota/operations', allowed: READERS },
  { method: 'GET', path: '/api/v1/admin/quota/operations/:id', allowed: READERS },
  { method: 'POST', path: '/api/v1/admin/quota/operations/:id/cancel', allowed: ['admin'] },
];
