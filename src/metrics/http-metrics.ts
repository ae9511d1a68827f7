import { Injectable } from '@nestjs/common';
import { Histogram } from 'prom-client';
import type { HttpReply, HttpRequest } from '../common/http';
import { MetricsRegistry } from './metrics-registry';

/** Request latency by route template (never the raw URL, which would explode cardinality). */
@Injectable()
export class HttpMetrics {
  private readonly duration: Histogram<'method' | 'route' | 'status_code'>;

  constructor(registry: MetricsRegistry) {
    this.duration = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request latency by method, route template and status code',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    });
  }

  /** Called once a response has been sent (Fastify's onResponse). */
  observe(request: HttpRequest, reply: HttpReply): void {
    // Unknown paths are answered by the not-found handler, which has no route template.
    const route = request.is404 ? undefined : request.routeOptions.url;
    this.duration.observe(
      {
        method: request.method,
        route: route ?? 'unmatched',
        status_code: String(reply.statusCode),
      },
      reply.elapsedTime / 1000,
    );
  }
}
