import { Controller, Get, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiExtraModels, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { HttpReply } from '../common/http';
import { Roles } from '../auth/decorators';
import { AnalyticsService } from './analytics.service';
import { AnomaliesQuery, AnomaliesResponse, ReasonStatsView, StatsQuery, StatsResponse } from './dto';

@ApiTags('analytics')
@ApiBearerAuth()
@ApiExtraModels(ReasonStatsView)
@Controller('admin/quota')
@Roles('admin', 'operator')
export class AnalyticsController {
  constructor(private readonly analytics: AnalyticsService) {}

  @Get('stats')
  @ApiOperation({
    summary: 'Quota stats per membership type (cached)',
    description:
      'Members, balances, utilisation, consumption and ledger rows per reason in the window. Cached for QUOTA_STATS_TTL seconds per normalised filter; fresh=true recomputes.',
  })
  @ApiOkResponse({
    type: StatsResponse,
    description: 'X-Cache: HIT or MISS says whether it came from the cache.',
    headers: {
      'X-Cache': {
        description: '`HIT` when the answer came from the cache, `MISS` when it was computed.',
        schema: { type: 'string', enum: ['HIT', 'MISS'] },
      },
    },
  })
  async stats(@Query() query: StatsQuery, @Res({ passthrough: true }) res: HttpReply) {
    const answer = await this.analytics.getStats(query);
    const meta = {
      cached: answer.cached,
      generated_at: answer.generatedAt,
      ttl_seconds: this.analytics.statsTtlSeconds,
    };
    // The body is a StatsResponse; its data part is already JSON text (see StatsAnswer).
    res.header('X-Cache', answer.cached ? 'HIT' : 'MISS').type('application/json; charset=utf-8');
    return `{"data":${answer.dataJson},"meta":${JSON.stringify(meta)}}`;
  }

  @Get('anomalies')
  @ApiOperation({
    summary: 'Detected usage anomalies, newest first',
    description: 'Spikes against the member baseline, cohort outliers, bursts and 80%/100% threshold crossings.',
  })
  @ApiOkResponse({ type: AnomaliesResponse })
  async anomalies(@Query() query: AnomaliesQuery) {
    const page = await this.analytics.listAnomalies(query);
    return { data: page.rows, meta: { limit: page.limit, next_cursor: page.nextCursor } };
  }
}
