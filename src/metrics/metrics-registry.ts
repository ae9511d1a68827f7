import { Registry } from 'prom-client';

/**
 * One Prometheus registry per application instance (tests boot several in one process). Modules
 * create their own metrics against it: `new Counter({ ..., registers: [registry] })`.
 */
export class MetricsRegistry extends Registry {}
