import type { RouteRule } from './route-rules';

const READERS = ['admin', 'operator'] as const;

/** Routes of the webhooks module (subscriptions, secrets, delivery logs). */
export const WEBHOOKS_ROUTE_RULES: readonly RouteRule[] = [
  { method: 'GET', path: '/api/v1/admin/webhooks', allowed: READERS },
  { method: 'POST', path: '/api/v1/admin/webhooks', allowed: ['admin'] },
  { method: 'GET', path: '/api/v1/admin/webhooks/:id', allowed: READERS },
  { method: 'PATCH', path: '/api/v1/admin/webhooks/:id', allowed: ['admin'] },
  { method: 'DELETE', path: '/api/v1/admin/webhooks/:id', allowed: ['admin'] },
  { method: 'POST', path: '/api/v1/admin/webhooks/:id/rotate-secret', allowed: ['admin'] },
  { method: 'POST', path: '/api/v1/admin/webhooks/:id/test', allowed: ['admin'] },
  { method: 'GET', path: '/api/v1/admin/webhooks/:id/deliveries', allowed: READERS },
  { method: 'POST', path: '/api/v1/admin/webhooks/:id/deliveries/:delivery_id/redeliver', allowed: ['admin'] },
];
