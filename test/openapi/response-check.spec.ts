import { createServer, type Server } from 'node:http';
import request from 'supertest';
import { responseViolations, takeViolations, watchResponses } from './response-check';

const PROBLEM = {
  type: 'urn:quota-service:problem:not_found',
  title: 'Not Found',
  status: 404,
  detail: 'No such route.',
  code: 'not_found',
  request_id: 'r-1',
};
const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8', 'x-request-id': 'r-1' };
const PROBLEM_HEADERS = { 'content-type': 'application/problem+json', 'x-request-id': 'r-1' };
const body = (value: unknown) => Buffer.from(JSON.stringify(value));

describe('the suite-wide response check', () => {
  it('accepts a documented answer and names what is wrong with an undocumented one', () => {
    const liveness = { status: 'ok', uptime_seconds: 3 };
    expect(responseViolations('GET', '/api/v1/health/live', 200, JSON_HEADERS, body(liveness))).toEqual([]);
    expect(responseViolations('GET', '/api/v1/health/live/', 200, JSON_HEADERS, body(liveness))).toEqual([]);
    expect(responseViolations('GET', '/api/v1/health/live', 418, JSON_HEADERS, body(liveness))).toEqual([
      expect.stringContaining('status not documented'),
    ]);
    expect(
      responseViolations('GET', '/api/v1/health/live', 200, JSON_HEADERS, body({ ...liveness, extra: 1 })),
    ).toEqual([expect.stringContaining('undocumented member "extra"')]);
    expect(
      responseViolations('GET', '/api/v1/health/live', 200, { 'content-type': 'application/json' }, body(liveness)),
    ).toEqual([expect.stringContaining('no X-Request-Id')]);
    expect(
      responseViolations(
        'GET',
        '/api/v1/health/live',
        200,
        { ...JSON_HEADERS, 'content-type': 'text/html' },
        body(liveness),
      ),
    ).toEqual([expect.stringContaining('content type text/html not documented')]);
    expect(responseViolations('GET', '/api/v1/health/live', 200, JSON_HEADERS, Buffer.from('{"status":'))).toEqual([
      expect.stringContaining('not JSON'),
    ]);
  });

  it('matches literal segments before parameters, like the router', () => {
    const created = { data: [], meta: { created: 1 } };
    // /admin/members/batch is its own operation, not /admin/members/{id}.
    expect(
      responseViolations('POST', '/api/v1/admin/members/batch', 201, JSON_HEADERS, body(created)).filter((e) =>
        e.includes('status not documented'),
      ),
    ).toEqual([]);
  });

  it('judges paths the document does not describe only by the Problem schema', () => {
    expect(responseViolations('GET', '/api/v1/nothing-here', 404, PROBLEM_HEADERS, body(PROBLEM))).toEqual([]);
    expect(responseViolations('GET', '/api/docs', 200, { 'content-type': 'text/html' }, Buffer.from('<html>'))).toEqual(
      [],
    );
    expect(
      responseViolations('GET', '/api/v1/nothing-here', 404, PROBLEM_HEADERS, body({ ...PROBLEM, code: undefined })),
    ).toEqual([expect.stringContaining('missing required member "code"')]);
    // A worker's 404 on a business route is not an answer of that operation.
    const worker = { servesOperation: (path: string) => path.startsWith('/api/v1/health') };
    expect(responseViolations('GET', '/api/v1/admin/users', 404, PROBLEM_HEADERS, body(PROBLEM), worker)).toEqual([]);
    expect(responseViolations('GET', '/api/v1/admin/users', 404, PROBLEM_HEADERS, body(PROBLEM))).toEqual([
      expect.stringContaining('status not documented'),
    ]);
  });

  it('reads real responses off the wire, whichever way the body was written', async () => {
    const server: Server = createServer((req, res) => {
      if (req.url === '/api/v1/health/live') {
        // Headers through writeHead only, the body in two writes.
        res.writeHead(418, { 'Content-Type': 'application/json', 'X-Request-Id': 'r-2' });
        res.write('{"status":"ok",');
        res.end('"uptime_seconds":1}');
      } else {
        res.statusCode = 404;
        res.setHeader('Content-Type', 'application/problem+json');
        res.end(JSON.stringify({ ...PROBLEM, request_id: undefined }));
      }
    });
    const watch = watchResponses(server);
    try {
      await request(server).get('/api/v1/health/live');
      await request(server).get('/api/v1/elsewhere');
    } finally {
      watch.stop();
    }
    const violations = takeViolations();
    expect(violations?.message).toContain('GET /api/v1/health/live → 418: status not documented');
    expect(violations?.message).toContain('GET /api/v1/elsewhere → 404: $: missing required member "request_id"');
    expect(violations?.message).toContain('GET /api/v1/elsewhere → 404: no X-Request-Id header');
    expect(takeViolations()).toBeUndefined();
  });
});
