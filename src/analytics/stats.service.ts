import { Injectable } from '@nestjs/common';
import { QuotaDatabase } from '../database/database';
import { readBoolean, type SqlSession } from '../database/sql-session';
import { emptyFold, foldRows, hourCeil, hourFloor, TypeAttribution } from './ledger-fold';
import { RollupsRepository } from './rollups.repository';
import { TailRepository } from './tail.repository';

export const DEFAULT_WINDOW_MS = 30 * 86_400_000;

export interface StatsFilter {
  readonly membershipType?: string;
  readonly from: Date;
  readonly to: Date;
}

export interface ReasonStats {
  count: number;
  units: number;
  net_delta: number;
}

export interface TypeStats {
  membership_type: string;
  configured: boolean;
  max_quota: number | null;
  is_active: boolean | null;
  members: number;
  total_balance: number;
  /** members × max_quota: what the type would hold if every member were full. */
  total_max_quota: number | null;
  /** Share of that capacity used: 1 − total_balance / total_max_quota (null without capacity). */
  utilisation: number | null;
  consumption: { count: number; units: number };
  history_rows: number;
  by_reason: Record<string, ReasonStats>;
}

export interface StatsBody {
  window: { from: string; to: string };
  membership_types: TypeStats[];
  totals: {
    members: number;
    total_balance: number;
    consumption: { count: number; units: number };
    history_rows: number;
    by_reason: Record<string, ReasonStats>;
  };
  /** The last ledger id folded into the rollups when these stats were computed. */
  rollup_watermark: string;
}

interface Acc {
  members: number;
  balance: number;
  reasons: Map<string, ReasonStats>;
}

/**
 * Stats without scanning the ledger or the members table: the rollups and per-type totals the tail
 * processor keeps (up to its watermark), plus a live aggregate of the rows after the watermark,
 * plus the ledger rows of the partial hours at the edges of the window. All of it is read in one
 * transaction (one consistent snapshot on InnoDB), so the three parts never overlap or miss a row.
 *
 * Indexes (checked with EXPLAIN on MariaDB 10.11):
 * - rollups: `quota_stats_hourly` primary key range on hour_start (a few rows per hour);
 * - tail: PRIMARY range `h.id > watermark`, then eq_ref on members/config primary and unique keys;
 * - edges: range on the seed's `idx_member_quota_history_created_at` (at most two partial hours);
 * - membership changes after the watermark: ref on the seed's `idx_member_quota_history_reason`,
 *   whose entries end in the primary key, so `id > ?` is a range within it.
 */
@Injectable()
export class StatsService {
  constructor(
    private readonly db: QuotaDatabase,
    private readonly tail: TailRepository,
    private readonly rollups: RollupsRepository,
  ) {}

  compute(filter: StatsFilter): Promise<StatsBody> {
    return this.db.transaction((s) => this.read(s, filter), { retries: 1 });
  }

  private async read(s: SqlSession, filter: StatsFilter): Promise<StatsBody> {
    const fromMs = filter.from.getTime();
    const toMs = filter.to.getTime();
    const type = filter.membershipType;
    const accs = new Map<string, Acc>();
    const acc = (t: string): Acc => {
      let a = accs.get(t);
      if (!a) {
        a = { members: 0, balance: 0, reasons: new Map() };
        accs.set(t, a);
      }
      return a;
    };
    const addReason = (t: string, reason: string, count: number, units: number, net: number) => {
      if (count === 0) return;
      const reasons = acc(t).reasons;
      const r = reasons.get(reason) ?? { count: 0, units: 0, net_delta: 0 };
      r.count += count;
      r.units += units;
      r.net_delta += net;
      reasons.set(reason, r);
    };

    const watermark = await this.tail.watermark(s);

    // Whole hours inside the window come from the rollups (+ tail); partial hours from the ledger.
    // A window that ends now (or later) has no rows after its end yet, so its last, partial hour is
    // as good as whole: rollups + tail cover it without reading that hour from the ledger.
    const endsNow = toMs >= (await this.tail.nowMs(s));
    let wholeFrom = hourCeil(fromMs);
    let wholeTo = endsNow ? hourCeil(toMs) : hourFloor(toMs);
    if (wholeFrom >= wholeTo) {
      wholeFrom = toMs;
      wholeTo = toMs;
    }
    const edges: Array<[number, number]> = [];
    if (fromMs < wholeFrom) edges.push([fromMs, wholeFrom]);
    if (wholeTo < toMs && wholeTo >= wholeFrom) edges.push([Math.max(wholeTo, fromMs), toMs]);

    const totals = await this.rollups.typeTotals(s, type);
    for (const t of totals) {
      acc(t.membership_type).members += Number(t.members);
      acc(t.membership_type).balance += Number(t.balance);
    }

    if (wholeFrom < wholeTo) {
      const rollups = await this.rollups.hourlyBetween(s, new Date(wholeFrom), new Date(wholeTo), type);
      for (const r of rollups) addReason(r.membership_type, r.reason, Number(r.n), Number(r.units), Number(r.net));
    }

    // The tail: rows after the watermark. Members whose type changed there are folded row by row
    // (their rows belong to the type they had at the time); everyone else is aggregated in SQL.
    const changes = await this.tail.typeChangesAfter(s, watermark);
    const changed = [...new Set(changes.map((c) => c.memberId))];
    const tail = await this.rollups.tailAggregate(
      s,
      watermark,
      { from: new Date(wholeFrom), to: new Date(wholeTo) },
      changed,
      type,
    );
    for (const r of tail) {
      const a = acc(r.membership_type);
      a.balance += Number(r.net_all);
      if (r.reason === 'initial_grant') a.members += Number(r.n_all);
      addReason(r.membership_type, r.reason, Number(r.n), Number(r.units), Number(r.net));
    }
    if (changed.length) {
      const fold = foldRows(
        emptyFold(),
        await this.tail.memberRowsAfter(s, watermark, changed),
        new TypeAttribution(changes),
        (row) => row.createdAtMs >= wholeFrom && row.createdAtMs < wholeTo,
      );
      for (const [t, v] of fold.totals) {
        if (type !== undefined && t !== type) continue;
        acc(t).members += v.members;
        acc(t).balance += v.balance;
      }
      for (const c of fold.rollups.values()) {
        if (type !== undefined && c.membershipType !== type) continue;
        addReason(c.membershipType, c.reason, c.count, c.units, c.net);
      }
    }

    // Partial hours at the edges, straight from the ledger (every id), by the member's current type.
    for (const [a, b] of edges) {
      const rows = await this.rollups.ledgerBetween(s, new Date(a), new Date(b), type);
      for (const r of rows) addReason(r.membership_type, r.reason, Number(r.n), Number(r.units), Number(r.net));
    }

    const configs = await this.rollups.configs(s, type);
    const configByType = new Map(configs.map((c) => [c.membership_type, c]));
    for (const c of configs) acc(c.membership_type);

    return this.shape(filter, accs, configByType, watermark);
  }

  private shape(
    filter: StatsFilter,
    accs: Map<string, Acc>,
    configs: Map<string, { max_quota: unknown; is_active: unknown }>,
    watermark: string,
  ): StatsBody {
    const allReasons = new Map<string, ReasonStats>();
    const types: TypeStats[] = [...accs.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([membershipType, a]) => {
        const config = configs.get(membershipType);
        const maxQuota = config ? Number(config.max_quota) : null;
        const capacity = maxQuota === null ? null : maxQuota * a.members;
        const byReason: Record<string, ReasonStats> = {};
        let rows = 0;
        for (const [reason, r] of [...a.reasons.entries()].sort()) {
          byReason[reason] = { ...r };
          rows += r.count;
          const all = allReasons.get(reason) ?? { count: 0, units: 0, net_delta: 0 };
          all.count += r.count;
          all.units += r.units;
          all.net_delta += r.net_delta;
          allReasons.set(reason, all);
        }
        const consumption = a.reasons.get('consumption');
        return {
          membership_type: membershipType,
          configured: config !== undefined,
          max_quota: maxQuota,
          is_active: config ? readBoolean(config.is_active) : null,
          members: a.members,
          total_balance: a.balance,
          total_max_quota: capacity,
          utilisation: capacity ? Math.round((1 - a.balance / capacity) * 10_000) / 10_000 : null,
          consumption: { count: consumption?.count ?? 0, units: consumption?.units ?? 0 },
          history_rows: rows,
          by_reason: byReason,
        };
      });
    const byReason: Record<string, ReasonStats> = {};
    for (const [reason, r] of [...allReasons.entries()].sort()) byReason[reason] = r;
    const consumption = allReasons.get('consumption');
    return {
      window: { from: filter.from.toISOString(), to: filter.to.toISOString() },
      membership_types: types,
      totals: {
        members: types.reduce((n, t) => n + t.members, 0),
        total_balance: types.reduce((n, t) => n + t.total_balance, 0),
        consumption: { count: consumption?.count ?? 0, units: consumption?.units ?? 0 },
        history_rows: types.reduce((n, t) => n + t.history_rows, 0),
        by_reason: byReason,
      },
      rollup_watermark: watermark,
    };
  }
}
