import type { RouteRule } from './route-rules';

/** Routes of the quota module (configs, members, ledger, consumption). */
export const QUOTA_ROUTE_RULES: readonly RouteRule[] = [];
