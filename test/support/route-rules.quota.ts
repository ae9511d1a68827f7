import type { RouteRule } from './route-rules';

const READERS = ['admin', 'operator'] as const;

/** Routes of the quota module (configs, members, ledger, consumption). */
export const QUOTA_ROUTE_RULES: readonly RouteRule[] = [
  { method: 'GET', path: '/api/v1/admin/quota/configs', allowed: READERS },
  { method: 'POST', path: '/api/v1/admin/quota/configs', allowed: ['admin'] },
  { method: 'GET', path: '/api/v1/admin/quota/configs/:id', allowed: READERS },
  { method: 'PATCH', path: '/api/v1/admin/quota/configs/:id', allowed: ['admin'] },
  { method: 'DELETE', path: '/api/v1/admin/quota/configs/:id', allowed: ['admin'] },

  { method: 'GET', path: '/api/v1/admin/members', allowed: READERS },
  { method: 'POST', path: '/api/v1/admin/members', allowed: READERS },
  { method: 'POST', path: '/api/v1/admin/members/batch', allowed: READERS },
  { method: 'GET', path: '/api/v1/admin/members/:id', allowed: READERS },
  { method: 'PATCH', path: '/api/v1/admin/members/:id', allowed: READERS },

  { method: 'POST', path: '/api/v1/admin/quota/members/:id/adjust', allowed: READERS },
  { method: 'GET', path: '/api/v1/admin/quota/history', allowed: READERS },
  { method: 'GET', path: '/api/v1/admin/quota/integrity', allowed: READERS },
  { method: 'GET', path: '/api/v1/admin/quota/members/:id/statement', allowed: READERS },

  // A member token reaches only its own member here (another id answers 404, as if unknown).
  { method: 'GET', path: '/api/v1/quota/members/:id', allowed: ['admin', 'service', 'member'] },
  { method: 'POST', path: '/api/v1/quota/members/:id/consume', allowed: ['admin', 'service', 'member'] },
  { method: 'POST', path: '/api/v1/quota/members/:id/refund', allowed: ['admin', 'service'] },
  { method: 'GET', path: '/api/v1/quota/me', allowed: ['member'] },
  { method: 'POST', path: '/api/v1/quota/me/consume', allowed: ['member'] },

  // Holds: settling is for the hold's maker and admins; any other caller is told 404 (not 403).
  { method: 'POST', path: '/api/v1/quota/members/:id/holds', allowed: ['admin', 'service'] },
  { method: 'POST', path: '/api/v1/quota/me/holds', allowed: ['member'] },
  { method: 'GET', path: '/api/v1/quota/me/holds', allowed: ['member'] },
  { method: 'GET', path: '/api/v1/quota/holds/:hold_id', allowed: ['admin', 'operator', 'service', 'member'] },
  { method: 'POST', path: '/api/v1/quota/holds/:hold_id/commit', allowed: ['admin', 'operator', 'service', 'member'] },
  { method: 'POST', path: '/api/v1/quota/holds/:hold_id/release', allowed: ['admin', 'operator', 'service', 'member'] },
  { method: 'GET', path: '/api/v1/admin/quota/holds', allowed: READERS },
];
