import { Controller, Get, Headers, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProduces, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { SkipThrottle } from '@nestjs/throttler';
import type { HttpReply } from '../common/http';
import { timingSafeEqual } from 'node:crypto';
import { Public } from '../auth/decorators';
import { AppError } from '../common/app-error';
import { AppConfig } from '../config/app-config';
import { MetricsRegistry } from './metrics-registry';
import { METRICS_TOKEN_SCHEME } from '../openapi/decorators';
import { ApiProblems } from '../openapi/problems';

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Prometheus scrape endpoint, outside /api/v1; guarded by METRICS_TOKEN when one is set. */
@ApiTags('monitoring')
@Controller('metrics')
@Public()
@SkipThrottle()
export class MetricsController {
  constructor(
    private readonly registry: MetricsRegistry,
    private readonly config: AppConfig,
  ) {}

  @Get()
  @ApiOperation({
    summary: 'Prometheus metrics (text exposition format)',
    description: 'When METRICS_TOKEN is set, send `Authorization: Bearer <METRICS_TOKEN>`; otherwise open.',
  })
  @ApiSecurity(METRICS_TOKEN_SCHEME)
  @ApiProduces('text/plain')
  @ApiOkResponse({ schema: { type: 'string' }, description: 'Prometheus text format 0.0.4' })
  @ApiProblems('unauthorized')
  async scrape(@Headers('authorization') authorization: string | undefined, @Res() res: HttpReply): Promise<void> {
    const token = this.config.metricsToken;
    if (token !== undefined && !sameSecret(authorization ?? '', `Bearer ${token}`)) {
      throw new AppError('unauthorized', 'A valid metrics bearer token is required.');
    }
    res.header('Content-Type', this.registry.contentType);
    res.header('Cache-Control', 'no-store');
    res.send(await this.registry.metrics());
  }
}
