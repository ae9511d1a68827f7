import { Body, Controller, Get, Module, Post, Query } from '@nestjs/common';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, IsString, Max, MaxLength, Min, ValidateNested } from 'class-validator';
import request from 'supertest';
import { Public } from '../../src/auth/decorators';
import { startTestApp, type TestApp } from '../support/test-app';

class ProbeItem {
  @IsString()
  @MaxLength(8)
  name!: string;
}

class ProbeBody {
  @IsInt()
  @Min(1)
  @Max(100)
  amount!: number;

  @IsOptional()
  @ValidateNested({ each: true })
  @Type(() => ProbeItem)
  items?: ProbeItem[];
}

class ProbeQuery {
  @IsOptional()
  @IsInt()
  @Type(() => Number)
  page?: number;
}

/** Exercises the global pipe and filter the way product controllers use them. */
@Controller('probe')
class ProbeController {
  @Public()
  @Post()
  echo(@Body() body: ProbeBody) {
    return { data: body };
  }

  @Public()
  @Get()
  list(@Query() query: ProbeQuery) {
    return { data: query };
  }

  @Public()
  @Get('boom')
  boom() {
    throw new Error("ER_PARSE_ERROR: You have an error in your SQL syntax near 'SELECT secret FROM users'");
  }

  @Public()
  @Get('db-down')
  dbDown() {
    throw Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:3306'), { code: 'ECONNREFUSED' });
  }
}

@Module({ controllers: [ProbeController] })
class ProbeModule {}

function expectProblem(res: request.Response, status: number, code: string): void {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({
    type: `urn:quota-service:problem:${code}`,
    status,
    code,
  });
  expect(typeof res.body.title).toBe('string');
  expect(typeof res.body.detail).toBe('string');
  expect(res.body.request_id).toBe(res.headers['x-request-id']);
}

describe('problem+json errors', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({ extraModules: [ProbeModule] });
  });
  afterAll(async () => {
    await t.close();
  });

  it('accepts a valid body', async () => {
    const res = await request(t.server).post('/api/v1/probe').send({ amount: 5 }).expect(201);
    expect(res.body).toEqual({ data: { amount: 5 } });
  });

  it('400 malformed_json for a body that is not JSON', async () => {
    const res = await request(t.server)
      .post('/api/v1/probe')
      .set('Content-Type', 'application/json')
      .send('{"amount": 5');
    expectProblem(res, 400, 'malformed_json');
  });

  it('400 malformed_json for an empty JSON body and for a __proto__ key', async () => {
    const empty = await request(t.server).post('/api/v1/probe').set('Content-Type', 'application/json');
    expectProblem(empty, 400, 'malformed_json');
    const poisoned = await request(t.server)
      .post('/api/v1/probe')
      .set('Content-Type', 'application/json')
      .send('{"amount": 1, "__proto__": {"polluted": true}}');
    expectProblem(poisoned, 400, 'malformed_json');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('415 unsupported_media_type for a body that is not JSON (or text)', async () => {
    const res = await request(t.server)
      .post('/api/v1/probe')
      .set('Content-Type', 'application/xml')
      .send('<amount>1</amount>');
    expectProblem(res, 415, 'unsupported_media_type');
  });

  it('404 not_found for unknown routes, inside and outside the API prefix', async () => {
    expectProblem(await request(t.server).get('/api/v1/nothing-here'), 404, 'not_found');
    expectProblem(await request(t.server).get('/nothing-here'), 404, 'not_found');
    expectProblem(await request(t.server).delete('/api/v1/health'), 404, 'not_found');
  });

  it('413 payload_too_large for a body over BODY_LIMIT', async () => {
    const res = await request(t.server)
      .post('/api/v1/probe')
      .set('Content-Type', 'application/json')
      .send(JSON.stringify({ amount: 1, pad: 'x'.repeat(1024 * 1024 + 10) }));
    expectProblem(res, 413, 'payload_too_large');
  });

  it('422 validation_failed lists each field, including nested ones', async () => {
    const res = await request(t.server)
      .post('/api/v1/probe')
      .send({ amount: 1.5, items: [{ name: 'much-too-long-name' }] });
    expectProblem(res, 422, 'validation_failed');
    const fields = (res.body.errors as { field: string; message: string }[]).map((e) => e.field).sort();
    expect(fields).toEqual(['amount', 'items.0.name']);
    for (const error of res.body.errors) expect(error.message).toEqual(expect.any(String));
  });

  it('422 for unknown body fields: nothing is silently accepted', async () => {
    const res = await request(t.server).post('/api/v1/probe').send({ amount: 1, is_admin: true });
    expectProblem(res, 422, 'validation_failed');
    expect(res.body.errors).toEqual([{ field: 'is_admin', message: 'property is_admin should not exist' }]);
  });

  it('refuses unknown query parameters', async () => {
    const ok = await request(t.server).get('/api/v1/probe?page=2').expect(200);
    expect(ok.body).toEqual({ data: { page: 2 } });
    const res = await request(t.server).get('/api/v1/probe?page=2&sort=desc');
    expectProblem(res, 422, 'validation_failed');
    expect(res.body.errors[0].field).toBe('sort');
  });

  it('500 internal_error never leaks the message, SQL or a stack trace', async () => {
    const res = await request(t.server).get('/api/v1/probe/boom');
    expectProblem(res, 500, 'internal_error');
    const text = JSON.stringify(res.body);
    expect(text).not.toMatch(/SQL|SELECT|ER_PARSE|stack|at .*\.ts/);
    expect(res.body.detail).toContain(res.body.request_id);
  });

  it('503 database_unavailable with Retry-After when the database cannot be reached', async () => {
    const res = await request(t.server).get('/api/v1/probe/db-down');
    expectProblem(res, 503, 'database_unavailable');
    expect(res.headers['retry-after']).toBe('5');
    expect(JSON.stringify(res.body)).not.toMatch(/10\.0\.0\.5|ECONNREFUSED|3306/);
  });
});

describe('CORS', () => {
  it('allows only the origins in CORS_ORIGINS', async () => {
    const t = await startTestApp({ env: { CORS_ORIGINS: 'https://admin.example.com' } });
    try {
      const allowed = await request(t.server)
        .options('/api/v1/health')
        .set('Origin', 'https://admin.example.com')
        .set('Access-Control-Request-Method', 'GET');
      expect(allowed.status).toBe(204);
      expect(allowed.headers['access-control-allow-origin']).toBe('https://admin.example.com');

      const other = await request(t.server).get('/api/v1/health/live').set('Origin', 'https://evil.example.com');
      expect(other.headers['access-control-allow-origin']).toBeUndefined();
    } finally {
      await t.close();
    }
  });

  it('sends no CORS headers when CORS_ORIGINS is empty', async () => {
    const t = await startTestApp();
    try {
      const res = await request(t.server).get('/api/v1/health/live').set('Origin', 'https://admin.example.com');
      expect(res.headers['access-control-allow-origin']).toBeUndefined();
    } finally {
      await t.close();
    }
  });
});
