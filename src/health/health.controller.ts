import { Controller, Get, HttpCode, Res } from '@nestjs/common';
import type { Response } from 'express';
import { Public } from '../auth/decorators';
import { NoRateLimit } from '../throttle/throttle.decorators';
import { HealthService } from './health.service';

/** Probes and the seed's /health: no auth, never rate limited, never cached. */
@Controller('health')
@Public()
@NoRateLimit()
export class HealthController {
  constructor(private readonly health: HealthService) {}

  @Get()
  async seed(@Res({ passthrough: true }) res: Response) {
    const body = await this.health.seedHealth();
    res.status(body.status === 'healthy' ? 200 : 503).setHeader('Cache-Control', 'no-store');
    return body;
  }

  /** Process alive: never touches MySQL or Redis, so a database outage does not restart pods. */
  @Get('live')
  @HttpCode(200)
  live(@Res({ passthrough: true }) res: Response) {
    res.setHeader('Cache-Control', 'no-store');
    return { status: 'ok', uptime_seconds: Math.round(process.uptime()) };
  }

  @Get('ready')
  async ready(@Res({ passthrough: true }) res: Response) {
    const { ready, body } = await this.health.readiness();
    res.status(ready ? 200 : 503).setHeader('Cache-Control', 'no-store');
    return body;
  }
}
