import type { RouteRule } from './route-rules';

const READERS = ['admin', 'operator'] as const;

/** Routes of the analytics module (stats, anomalies). */
export const ANALYTICS_ROUTE_RULES: readonly RouteRule[] = [
  { method: 'GET', path: '/api/v1/admin/quota/stats', allowed: READERS },
  { method: 'GET', path: '/api/v1/admin/quota/anomalies', allowed: READERS },
];
