import { Controller, Get, HttpCode, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import type { HttpReply } from '../common/http';
import { Public } from '../auth/decorators';
import { NoRateLimit } from '../throttle/throttle.decorators';
import { HealthService } from './health.service';
import { LivenessSchema, ReadinessSchema, SeedHealthSchema } from '../openapi/schemas';

/** Probes and the seed's /health: no auth, never rate limited, never cached. */
@ApiTags('health')
@Controller('health')
@Public()
@NoRateLimit()
export class HealthController {
  constructor(private readonly health: HealthService) {}

  @Get()
  @ApiOperation({ summary: "The seed system's health body" })
  @ApiOkResponse({ type: SeedHealthSchema, description: 'Healthy' })
  @ApiServiceUnavailableResponse({ type: SeedHealthSchema, description: 'Unhealthy' })
  async seed(@Res({ passthrough: true }) res: HttpReply) {
    const body = await this.health.seedHealth();
    res.status(body.status === 'healthy' ? 200 : 503).header('Cache-Control', 'no-store');
    return body;
  }

  /** Process alive: never touches MySQL or Redis, so a database outage does not restart pods. */
  @Get('live')
  @ApiOperation({ summary: 'Liveness probe' })
  @ApiOkResponse({ type: LivenessSchema })
  @HttpCode(200)
  live(@Res({ passthrough: true }) res: HttpReply) {
    res.header('Cache-Control', 'no-store');
    return { status: 'ok', uptime_seconds: Math.round(process.uptime()) };
  }

  @Get('ready')
  @ApiOperation({ summary: 'Readiness probe: database, migrations, not shutting down (Redis is not required)' })
  @ApiOkResponse({ type: ReadinessSchema, description: 'Ready' })
  @ApiServiceUnavailableResponse({ type: ReadinessSchema, description: 'Not ready' })
  async ready(@Res({ passthrough: true }) res: HttpReply) {
    const { ready, body } = await this.health.readiness();
    res.status(ready ? 200 : 503).header('Cache-Control', 'no-store');
    return body;
  }
}
