import type { IncomingMessage, OutgoingHttpHeaders, Server, ServerResponse } from 'node:http';
import { checkResponse, findOperation, readCommittedDocument, validateSchema } from './openapi-check';

/*
 * Every response of every in-process test app is checked against the committed openapi.json, so
 * each suite (role matrix, bad input, outages, flows) also tests the document: a status the route
 * does not document, another media type, a body off its schema or a missing X-Request-Id fails
 * the test that caused it. The check reads what goes on the wire, at the Node server, so it sees
 * Fastify's own refusals too and needs no hook inside the application.
 *
 * Not checked against an operation: HEAD and OPTIONS (Fastify's automatic twins and CORS
 * preflights), and paths the document does not describe (the docs UI, probe routes that tests
 * mount, unknown paths); of those, a problem+json answer must still be a valid Problem.
 */

const PROBLEM_SCHEMA = { $ref: '#/components/schemas/Problem' };
const UNCHECKED_METHODS = new Set(['HEAD', 'OPTIONS']);

let committed: ReturnType<typeof readCommittedDocument>['document'] | undefined;
const documentOnce = () => (committed ??= readCommittedDocument().document);

const pending: string[] = [];

export interface WatchOptions {
  /**
   * Whether the app serves the documented operation at this path. A worker serves only probes
   * and metrics: its 404s on business routes are not answers of those operations.
   */
  readonly servesOperation?: (path: string) => boolean;
}

function currentTestName(): string {
  return (typeof expect === 'function' ? expect.getState().currentTestName : undefined) ?? '(outside a test)';
}

function mediaType(headers: OutgoingHttpHeaders): string {
  return String(headers['content-type'] ?? '')
    .split(';')[0]
    .trim();
}

function parseBody(type: string, raw: Buffer): { body: unknown; error?: string } {
  if (raw.length === 0) return { body: undefined };
  if (type !== 'application/json' && !type.endsWith('+json')) return { body: raw.toString('utf8') };
  try {
    return { body: JSON.parse(raw.toString('utf8')) as unknown };
  } catch {
    return { body: undefined, error: `the ${type} body is not JSON` };
  }
}

/** What is wrong with one response; empty when it conforms or is not the document's to judge. */
export function responseViolations(
  method: string,
  url: string,
  status: number,
  headers: OutgoingHttpHeaders,
  raw: Buffer,
  options: WatchOptions = {},
): string[] {
  if (UNCHECKED_METHODS.has(method)) return [];
  const document = documentOnce();
  const path = url.split('?')[0];
  const type = mediaType(headers);
  const { body, error } = parseBody(type, raw);
  const where = `${method} ${path} → ${status}`;
  if (error) return [`${where}: ${error}`];
  const documented = findOperation(document, method, path) !== undefined && options.servesOperation?.(path) !== false;
  if (documented) {
    const flat = Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, value?.toString()]));
    return checkResponse(document, method, path, { status, headers: flat, body });
  }
  if (type !== 'application/problem+json') return [];
  const errors = validateSchema(document, PROBLEM_SCHEMA, body).map((e) => `${where}: ${e}`);
  if (!headers['x-request-id']) errors.push(`${where}: no X-Request-Id header`);
  return errors;
}

export interface ResponseWatch {
  stop(): void;
}

type Chunk = string | Buffer | Uint8Array;

function toBuffer(chunk: unknown, encoding: unknown): Buffer | undefined {
  if (typeof chunk === 'string')
    return Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
  if (chunk instanceof Uint8Array) return Buffer.from(chunk);
  return undefined;
}

/** Records, for the running test, every response of `server` that does not match the document. */
export function watchResponses(server: Server, options: WatchOptions = {}): ResponseWatch {
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    const written: OutgoingHttpHeaders = {};
    const test = currentTestName();
    const { write, end, writeHead } = res;
    res.write = function (this: ServerResponse, chunk: Chunk, ...rest: unknown[]) {
      const buffer = toBuffer(chunk, rest[0]);
      if (buffer) chunks.push(buffer);
      return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
    } as ServerResponse['write'];
    res.end = function (this: ServerResponse, ...args: unknown[]) {
      const buffer = typeof args[0] === 'function' ? undefined : toBuffer(args[0], args[1]);
      if (buffer) chunks.push(buffer);
      return (end as (...args: unknown[]) => ServerResponse).apply(this, args);
    } as ServerResponse['end'];
    // Headers handed to writeHead directly are not all visible through getHeaders().
    res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
      const headers = args.find((arg) => arg !== null && typeof arg === 'object' && !Array.isArray(arg));
      for (const [name, value] of Object.entries((headers ?? {}) as OutgoingHttpHeaders)) {
        written[name.toLowerCase()] = value;
      }
      return (writeHead as (...args: unknown[]) => ServerResponse).apply(this, args);
    };
    res.once('finish', () => {
      try {
        const headers = { ...written, ...res.getHeaders() };
        const found = responseViolations(
          req.method ?? 'GET',
          req.url ?? '/',
          res.statusCode,
          headers,
          Buffer.concat(chunks),
          options,
        );
        pending.push(...found.map((violation) => `${violation}\n    (in "${test}")`));
      } catch (err) {
        pending.push(`${req.method} ${req.url}: the response check failed: ${String(err)}\n    (in "${test}")`);
      }
    });
  };
  server.prependListener('request', onRequest);
  return { stop: () => server.off('request', onRequest) };
}

/** The violations recorded since the last call, as one error (undefined when there are none). */
export function takeViolations(): Error | undefined {
  if (pending.length === 0) return undefined;
  const found = pending.splice(0, pending.length);
  return new Error(
    `${found.length} response(s) do not match openapi.json (fix the document or the service; ` +
      `run \`npm run openapi\` after changing decorators):\n  ${found.join('\n  ')}`,
  );
}

// Fails the test whose requests got an undocumented answer, right after it.
if (typeof afterEach === 'function') {
  afterEach(() => {
    const violations = takeViolations();
    if (violations) throw violations;
  });
}
