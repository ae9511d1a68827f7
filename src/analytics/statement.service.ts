import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { NotFoundError, ValidationFailedError } from '../common/app-error';
import { ROOT_LOGGER } from '../common/logger.token';
import { QuotaDatabase } from '../database/database';
import type { SqlSession } from '../database/sql-session';
import { BalancesInTimeRepository } from '../quota/balances-in-time.repository';
import type { HistoryReason } from '../quota/entities/quota-history.entity';
import { MembersRepository } from '../quota/members.repository';
import { pastInstant } from '../quota/past-instant';
import { dayCeil, dayFloor } from './ledger-fold';
import { MemberDailyRepository, type ReasonSumRow } from './member-daily.repository';
import { TailRepository } from './tail.repository';

export interface ReasonTotal {
  readonly count: number;
  readonly units: number;
}

export interface Statement {
  readonly memberId: string;
  readonly from: Date;
  readonly to: Date;
  readonly openingBalance: number;
  readonly closingBalance: number;
  readonly held: number;
  /** Only the reasons that have rows in the window. */
  readonly totals: ReadonlyMap<HistoryReason, ReasonTotal>;
}

/**
 * The whole UTC days inside [from, to] (to inclusive, at millisecond precision) as [fromDay,
 * toDay), and the partial days at both ends as inclusive ranges; null whole days when there are
 * none (the window is all edge).
 */
export function statementDays(
  from: Date,
  to: Date,
): { whole: { from: Date; to: Date } | null; edges: Array<{ from: Date; to: Date }> } {
  const fromDay = dayCeil(from.getTime());
  const toDay = dayFloor(to.getTime() + 1);
  if (fromDay >= toDay) return { whole: null, edges: [{ from, to }] };
  const edges: Array<{ from: Date; to: Date }> = [];
  if (from.getTime() < fromDay) edges.push({ from, to: new Date(fromDay - 1) });
  if (toDay <= to.getTime()) edges.push({ from: new Date(toDay), to });
  return { whole: { from: new Date(fromDay), to: new Date(toDay) }, edges };
}

/**
 * A member's account statement over a window: its balances around the window (from the quota
 * module's time index) and its ledger rows per reason, without reading the rows of whole days.
 *
 * The totals, all read in one transaction (one InnoDB snapshot), are three parts that never
 * overlap and never miss a row:
 * - the daily rollups (quota_member_daily) of the whole UTC days inside the window: the rows the
 *   tail processor has folded (ids up to its watermark, except its open gaps);
 * - the member's rows in those days it has not folded yet: ids after the watermark, and in the
 *   open gaps (a few seconds of traffic);
 * - every row of the partial days at both ends, straight from the ledger.
 * So `closing = opening + Σ units` holds whether the processor is up to date or not, and the cost
 * is the number of days in the window plus at most two days of the member's rows.
 */
@Injectable()
export class StatementService {
  constructor(
    private readonly db: QuotaDatabase,
    private readonly members: MembersRepository,
    private readonly balances: BalancesInTimeRepository,
    private readonly tail: TailRepository,
    private readonly daily: MemberDailyRepository,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
  ) {}

  async statement(memberId: string, window: { from?: string; to?: string }): Promise<Statement> {
    const now = new Date();
    const to = window.to === undefined ? now : pastInstant('to', window.to, now);
    const requestedFrom = window.from === undefined ? undefined : pastInstant('from', window.from, now);
    if (requestedFrom && requestedFrom > to) {
      throw new ValidationFailedError([{ field: 'from', message: 'from must not be after to' }]);
    }
    return this.db.transaction(
      async (s) => {
        const member = await this.members.findById(s, memberId);
        if (!member) throw new NotFoundError('Member');
        // The default window starts with the member; `to` before its creation leaves an empty window.
        const from = requestedFrom ?? (member.createdAt < to ? member.createdAt : to);
        const figures = await this.balances.windowBalances(s, memberId, from, to);
        const totals = await this.totals(s, memberId, from, to);
        let units = 0;
        for (const total of totals.values()) units += total.units;
        if (figures.opening + units !== figures.closing) {
          // Only ledger rows whose created_at runs against their id order (clocks of two writers
          // apart), or a row committed after the tail processor gave up its gap, can do this; the
          // figures are answered as read.
          this.logger.warn(
            { memberId, from, to, opening: figures.opening, units, closing: figures.closing },
            'statement: opening balance plus the window rows differs from the closing balance',
          );
        }
        return {
          memberId,
          from,
          to,
          openingBalance: figures.opening,
          closingBalance: figures.closing,
          held: figures.held,
          totals,
        };
      },
      { retries: 1 },
    );
  }

  /** The window's rows per reason: rollups + rows not folded yet for whole days, the ledger for the edges. */
  private async totals(
    s: SqlSession,
    memberId: string,
    from: Date,
    to: Date,
  ): Promise<Map<HistoryReason, ReasonTotal>> {
    const { whole, edges } = statementDays(from, to);
    const parts: ReasonSumRow[] = [];
    if (whole) {
      const watermark = await this.tail.watermark(s);
      const gaps = await this.tail.gaps(s);
      parts.push(...(await this.daily.dailyBetween(s, memberId, whole.from, whole.to)));
      parts.push(...(await this.daily.unfoldedBetween(s, memberId, watermark, gaps, whole.from, whole.to)));
    }
    for (const edge of edges) parts.push(...(await this.daily.ledgerBetween(s, memberId, edge.from, edge.to)));
    const totals = new Map<HistoryReason, { count: number; units: number }>();
    for (const part of parts) {
      const count = Number(part.n);
      if (count === 0) continue;
      const total = totals.get(part.reason as HistoryReason) ?? { count: 0, units: 0 };
      total.count += count;
      total.units += Number(part.units);
      totals.set(part.reason as HistoryReason, total);
    }
    return new Map([...totals.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }
}
