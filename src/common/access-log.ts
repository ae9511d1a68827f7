import type { Logger } from 'pino';
import { pathOf, type HttpReply, type HttpRequest } from './http';
import { REQUEST_ID_HEADER } from './request-id';

/** Probes hit every few seconds; logging each would drown everything else. */
const QUIET_PATHS = new Set(['/api/v1/health/live', '/api/v1/health/ready', '/metrics']);

/**
 * Echoes every request's id (X-Request-Id; Fastify picked it, see pickRequestId) and writes one
 * access-log line when it ends: `request completed`, or `request aborted` when the client left
 * first. Lines go to the root logger's asynchronous destination; no per-request child logger is
 * built, which is most of what a request logger costs per request.
 */
export function createAccessLog(logger: Logger) {
  // The line holds only the fields picked below, none of them secret (never headers or bodies),
  // so it skips the root logger's redaction pass, which took longer than writing the line.
  const access = logger.child({}, { redact: { paths: [] } });
  return (request: HttpRequest, reply: HttpReply): void => {
    const started = performance.now();
    void reply.header(REQUEST_ID_HEADER, request.id);
    if (QUIET_PATHS.has(pathOf(request.url))) return;
    const res = reply.raw;
    res.once('close', () => {
      const line = {
        req: {
          id: request.id,
          method: request.method,
          url: request.url,
          remoteAddress: request.raw.socket.remoteAddress,
        },
        res: { statusCode: res.statusCode },
        responseTime: Math.round(performance.now() - started),
      };
      if (!res.writableFinished) access.warn(line, 'request aborted');
      else if (res.statusCode >= 500) access.error(line, 'request completed');
      else access.info(line, 'request completed');
    });
  };
}
