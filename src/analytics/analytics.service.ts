import { KeysetCursor } from '../common/keyset-cursor';
import { Injectable } from '@nestjs/common';
import { ValidationFailedError } from '../common/app-error';
import { AppConfig } from '../config/app-config';
import { QuotaDatabase } from '../database/database';
import { AnalyticsMetrics } from './analytics.metrics';
import { AnomaliesRepository } from './anomalies.repository';
import { ANOMALIES_DEFAULT_LIMIT, type AnomaliesQuery, type AnomalyView, type StatsQuery } from './dto';
import { hourFloor } from './ledger-fold';
import { StatsCache } from './stats-cache';
import { DEFAULT_WINDOW_MS, StatsService, type StatsFilter } from './stats.service';

export interface StatsAnswer {
  /**
   * The stats as JSON text (a StatsBody): cached entries are kept as the text they are sent as,
   * because parsing and re-serialising them cost more than the rest of a cached request.
   */
  readonly dataJson: string;
  readonly cached: boolean;
  readonly generatedAt: string;
}

const CURSOR = new KeysetCursor('a');

@Injectable()
export class AnalyticsService {
  /**
   * Computations under way, by cache key. When an entry expires under load, every request in
   * flight misses at once; they share one computation instead of each running the aggregates.
   */
  private readonly computing = new Map<string, Promise<StatsAnswer>>();

  constructor(
    private readonly stats: StatsService,
    private readonly cache: StatsCache,
    private readonly db: QuotaDatabase,
    private readonly config: AppConfig,
    private readonly metrics: AnalyticsMetrics,
    private readonly anomalies: AnomaliesRepository,
  ) {}

  get statsTtlSeconds(): number {
    return this.config.quota.statsTtlSeconds;
  }

  /**
   * Cached per normalised filter: the type (or all), and from/to as canonical ISO instants, or
   * "default"/"now" when absent, so a dashboard asking for "the last 30 days" shares one entry
   * for the TTL instead of missing on every request.
   */
  async getStats(query: StatsQuery, now = new Date()): Promise<StatsAnswer> {
    const to = query.to === undefined ? now : new Date(query.to);
    // The default window starts on a whole hour, so it is served from the rollups without reading
    // a partial hour from the ledger.
    const from =
      query.from === undefined ? new Date(hourFloor(to.getTime() - DEFAULT_WINDOW_MS)) : new Date(query.from);
    if (from.getTime() >= to.getTime()) {
      throw new ValidationFailedError([{ field: 'from', message: 'from must be before to' }]);
    }
    const key = [
      'stats:v2',
      query.membership_type ?? '*',
      query.from === undefined ? 'default' : from.toISOString(),
      query.to === undefined ? 'now' : to.toISOString(),
    ].join('|');
    const ttlMs = this.config.quota.statsTtlSeconds * 1000;
    const useCache = ttlMs > 0;

    if (useCache && query.fresh !== true) {
      const hit = await this.cache.get(key);
      if (hit === 'error') this.metrics.statsRequests.inc({ cache: 'error' });
      else if (hit) {
        this.metrics.statsRequests.inc({ cache: 'hit' });
        return { dataJson: hit.dataJson, cached: true, generatedAt: hit.generatedAt };
      } else this.metrics.statsRequests.inc({ cache: 'miss' });
    } else {
      this.metrics.statsRequests.inc({ cache: query.fresh === true ? 'bypass' : 'miss' });
    }

    // fresh=true, and every request when caching is off, gets a computation of its own, started
    // after it asked.
    const mayShare = useCache && query.fresh !== true;
    const shared = mayShare ? this.computing.get(key) : undefined;
    if (shared) return shared;
    const computation = this.compute(key, { membershipType: query.membership_type, from, to }, useCache ? ttlMs : 0);
    if (mayShare) {
      this.computing.set(key, computation);
      void computation.catch(() => undefined).finally(() => this.computing.delete(key));
    }
    return computation;
  }

  private async compute(key: string, filter: StatsFilter, ttlMs: number): Promise<StatsAnswer> {
    const generatedAt = new Date().toISOString();
    const data = await this.stats.compute(filter);
    const dataJson = JSON.stringify(data);
    if (ttlMs > 0) await this.cache.set(key, { dataJson, generatedAt }, ttlMs);
    return { dataJson, cached: false, generatedAt };
  }

  /** Newest first, keyset-paginated on the id (idx_quota_anomalies_detected_at / PRIMARY). */
  async listAnomalies(
    query: AnomaliesQuery,
  ): Promise<{ rows: AnomalyView[]; limit: number; nextCursor: string | null }> {
    const limit = query.limit ?? ANOMALIES_DEFAULT_LIMIT;
    const filter = {
      since: query.since === undefined ? undefined : new Date(query.since),
      kind: query.kind,
      memberId: query.member_id,
      beforeId: query.cursor === undefined ? undefined : CURSOR.decode(query.cursor),
    };
    // One row more than the page tells whether there is a next page.
    const rows = await this.db.read((s) => this.anomalies.page(s, filter, limit + 1));
    const page = rows.slice(0, limit);
    const nextCursor = rows.length > limit ? CURSOR.encode(page[page.length - 1].id) : null;
    return { rows: page, limit, nextCursor };
  }
}
