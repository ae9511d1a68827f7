import type { RouteRule } from './route-rules';

/** Routes of the analytics module (stats, anomalies). */
export const ANALYTICS_ROUTE_RULES: readonly RouteRule[] = [];
