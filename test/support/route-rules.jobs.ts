import type { RouteRule } from './route-rules';

/** Routes of the jobs module (bulk adjust, operations). */
export const JOBS_ROUTE_RULES: readonly RouteRule[] = [];
