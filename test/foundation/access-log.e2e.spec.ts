import { Controller, Get, Module } from '@nestjs/common';
import { connect } from 'node:net';
import request from 'supertest';
import { Public } from '../../src/auth/decorators';
import { bearer, loginAs } from '../support/auth';
import { createMember } from '../support/quota-factories';
import { startTestApp, type TestApp } from '../support/test-app';

@Controller('log-probe')
class FailingController {
  @Public()
  @Get('boom')
  boom() {
    throw new Error('the probe failed on purpose');
  }

  @Public()
  @Get('slow')
  async slow() {
    await new Promise((resolve) => setTimeout(resolve, 300));
    return { data: 'late' };
  }
}

@Module({ controllers: [FailingController] })
class FailingModule {}

interface LogLine {
  level: string;
  msg: string;
  service: string;
  time: string;
  responseTime?: number;
  req?: { id: string; method?: string; url?: string; remoteAddress?: string };
  res?: { statusCode: number };
  err?: { message: string };
}

/** The access log and error lines as an operator reads them: one JSON object per line, secrets redacted. */
describe('access log', () => {
  let t: TestApp;
  const raw: string[] = [];
  const lines = () =>
    raw
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as LogLine);

  beforeAll(async () => {
    t = await startTestApp({
      env: { LOG_LEVEL: 'info', THROTTLE_LIMIT: '0' },
      logDestination: { write: (chunk: string) => raw.push(chunk) },
      extraModules: [FailingModule],
    });
  });
  afterAll(async () => {
    await t?.close();
  });

  /** The line is written when the response closes, just after the client has its answer. */
  async function lineFor(requestId: string, msg = 'request completed'): Promise<LogLine> {
    for (let i = 0; i < 50; i++) {
      const found = lines().find((l) => l.req?.id === requestId && l.msg === msg);
      if (found) return found;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error(`no "${msg}" line for request ${requestId}`);
  }

  it('writes one line per request with its id, method, url, status and time, and no credentials', async () => {
    const { token } = await loginAs(t, 'service');
    const member = await createMember(t);
    const res = await request(t.server)
      .post(`/api/v1/quota/members/${member.id}/consume`)
      .set(bearer(token))
      .set('Idempotency-Key', 'key-that-must-not-be-logged')
      .send({ amount: 1 })
      .expect(200);
    const requestId = res.headers['x-request-id'];
    const line = await lineFor(requestId);
    expect(line).toEqual({
      level: 'info',
      msg: 'request completed',
      service: 'quota-service',
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      responseTime: expect.any(Number),
      req: {
        id: requestId,
        method: 'POST',
        url: `/api/v1/quota/members/${member.id}/consume`,
        remoteAddress: expect.any(String),
      },
      res: { statusCode: 200 },
    });
    expect(lines().filter((l) => l.req?.id === requestId)).toHaveLength(1);
    const everything = raw.join('');
    expect(everything).not.toContain(token);
    expect(everything).not.toContain('key-that-must-not-be-logged');
  });

  it('echoes an acceptable caller request id in the header and the log', async () => {
    const res = await request(t.server).get('/api/v1/nope').set('X-Request-Id', 'caller-id-42').expect(404);
    expect(res.headers['x-request-id']).toBe('caller-id-42');
    expect((await lineFor('caller-id-42')).res).toEqual({ statusCode: 404 });
  });

  it('leaves probes out', async () => {
    const res = await request(t.server).get('/api/v1/health/live').expect(200);
    await request(t.server).get('/api/v1/nope').expect(404); // a later line, so the probe's would be there by now
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(lines().filter((l) => l.req?.id === res.headers['x-request-id'])).toEqual([]);
  });

  it('logs an unexpected error at error level with the request id, and the response line as an error', async () => {
    const res = await request(t.server).get('/api/v1/log-probe/boom').expect(500);
    const requestId = res.headers['x-request-id'];
    const completed = await lineFor(requestId);
    expect(completed).toMatchObject({ level: 'error', res: { statusCode: 500 } });
    const failure = await lineFor(requestId, 'unhandled error');
    expect(failure).toMatchObject({ level: 'error', err: { message: 'the probe failed on purpose' } });
  });

  it('says when a client went away before its answer', async () => {
    if (!t.server.listening) await new Promise<void>((resolve) => t.server.listen(0, '127.0.0.1', resolve));
    const { port } = t.server.address() as { port: number };
    const before = lines().length;
    await new Promise<void>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => {
        // Hangs up while the answer is still being prepared.
        socket.write('GET /api/v1/log-probe/slow HTTP/1.1\r\nHost: x\r\n\r\n');
        setTimeout(() => socket.destroy(), 50);
        socket.on('close', () => resolve());
      });
      socket.on('error', reject);
    });
    for (
      let i = 0;
      i < 50 &&
      !lines()
        .slice(before)
        .some((l) => l.msg === 'request aborted');
      i++
    ) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(lines().slice(before)).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        msg: 'request aborted',
        req: expect.objectContaining({ method: 'GET', url: '/api/v1/log-probe/slow' }),
      }),
    );
  });
});
