import { Injectable } from '@nestjs/common';
import { ValidationFailedError } from '../common/app-error';
import { AppConfig } from '../config/app-config';
import { QuotaDatabase } from '../database/database';
import { readTimestamp, sqlTimestamp } from '../database/sql-session';
import { AnalyticsMetrics } from './analytics.metrics';
import type { AnomalyKind } from './anomaly-detector';
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

const CURSOR_PREFIX = 'a:';

function encodeCursor(id: string): string {
  return Buffer.from(`${CURSOR_PREFIX}${id}`).toString('base64url');
}

function decodeCursor(cursor: string): string {
  const match = /^a:([1-9]\d{0,18})$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!match) throw new ValidationFailedError([{ field: 'cursor', message: 'cursor is not a valid next_cursor' }]);
  return match[1];
}

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
    const conditions: string[] = [];
    const params: unknown[] = [];
    if (query.since !== undefined) {
      conditions.push('detected_at >= ?');
      params.push(sqlTimestamp(new Date(query.since)));
    }
    if (query.kind !== undefined) {
      conditions.push('kind = ?');
      params.push(query.kind);
    }
    if (query.member_id !== undefined) {
      conditions.push('member_id = ?');
      params.push(query.member_id);
    }
    if (query.cursor !== undefined) {
      conditions.push('id < ?');
      params.push(decodeCursor(query.cursor));
    }
    const where = conditions.length ? ` WHERE ${conditions.join(' AND ')}` : '';
    const rows = await this.db.read((s) =>
      s.rows<{
        id: unknown;
        member_id: unknown;
        membership_type: string;
        kind: AnomalyKind;
        occurred_at: unknown;
        detected_at: unknown;
        observed: unknown;
        expected: unknown;
        detail: string | null;
      }>(
        `SELECT id, member_id, membership_type, kind, occurred_at, detected_at, observed, expected, detail
           FROM quota_anomalies${where} ORDER BY id DESC LIMIT ?`,
        [...params, limit + 1],
      ),
    );
    const page = rows.slice(0, limit).map((r): AnomalyView => ({
      id: String(r.id),
      member_id: String(r.member_id),
      membership_type: r.membership_type,
      kind: r.kind,
      occurred_at: readTimestamp(r.occurred_at).toISOString(),
      detected_at: readTimestamp(r.detected_at).toISOString(),
      observed: Number(r.observed),
      expected: r.expected === null || r.expected === undefined ? null : Number(r.expected),
      detail: r.detail,
    }));
    const nextCursor = rows.length > limit ? encodeCursor(page[page.length - 1].id) : null;
    return { rows: page, limit, nextCursor };
  }
}
