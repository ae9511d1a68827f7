import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { assignRequestId } from './request-id';

/** Probes hit every few seconds; logging each would drown everything else. */
const QUIET_PATHS = new Set(['/api/v1/health/live', '/api/v1/health/ready', '/metrics']);

type IdentifiedRequest = IncomingMessage & { id?: string };

function pathOf(url: string | undefined): string {
  const raw = url ?? '';
  const query = raw.indexOf('?');
  return query === -1 ? raw : raw.slice(0, query);
}

/**
 * Gives every request its id (X-Request-Id) and writes one access-log line when it ends:
 * `request completed`, or `request aborted` when the client left first. Lines go to the root
 * logger's asynchronous destination; no per-request child logger is built, which is most of what
 * a request logger costs per request.
 */
export function createAccessLog(logger: Logger) {
  // The line holds only the fields picked below, none of them secret (never headers or bodies),
  // so it skips the root logger's redaction pass, which took longer than writing the line.
  const access = logger.child({}, { redact: { paths: [] } });
  return (req: IdentifiedRequest, res: ServerResponse, next: () => void): void => {
    const started = performance.now();
    req.id = assignRequestId(req, res);
    if (!QUIET_PATHS.has(pathOf(req.url))) {
      res.once('close', () => {
        const line = {
          req: { id: req.id, method: req.method, url: req.url, remoteAddress: req.socket.remoteAddress },
          res: { statusCode: res.statusCode },
          responseTime: Math.round(performance.now() - started),
        };
        if (!res.writableFinished) access.warn(line, 'request aborted');
        else if (res.statusCode >= 500) access.error(line, 'request completed');
        else access.info(line, 'request completed');
      });
    }
    next();
  };
}
