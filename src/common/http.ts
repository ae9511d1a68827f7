import type { FastifyReply, FastifyRequest } from 'fastify';

/** The request and reply every handler, guard and filter sees (the Fastify adapter's). */
export type HttpRequest = FastifyRequest;
export type HttpReply = FastifyReply;

/** The request path without its query string. */
export function pathOf(url: string | undefined): string {
  const raw = url ?? '';
  const query = raw.indexOf('?');
  return query === -1 ? raw : raw.slice(0, query);
}
