import type { RouteRule } from './route-rules';

/** The write freeze switch (contract §15). */
export const MAINTENANCE_ROUTE_RULES: readonly RouteRule[] = [
  { method: 'GET', path: '/api/v1/admin/maintenance', allowed: ['admin', 'operator'] },
  { method: 'PUT', path: '/api/v1/admin/maintenance', allowed: ['admin'] },
];
