import { AsyncLocalStorage } from 'node:async_hooks';
import { Injectable, type NestMiddleware } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';

interface RequestContext {
  readonly requestId: string | null;
}

const storage = new AsyncLocalStorage<RequestContext>();

/** The id of the HTTP request being served, if any: lets deep code (the audit log) name it. */
export function currentRequestId(): string | null {
  return storage.getStore()?.requestId ?? null;
}

/** Runs the rest of the request inside a context that carries its id (set earlier by pino-http). */
@Injectable()
export class RequestContextMiddleware implements NestMiddleware {
  use(req: Request & { id?: unknown }, _res: Response, next: NextFunction): void {
    const id = req.id;
    storage.run({ requestId: typeof id === 'string' || typeof id === 'number' ? String(id) : null }, next);
  }
}
