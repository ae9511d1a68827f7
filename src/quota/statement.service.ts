import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { AppError, NotFoundError, ValidationFailedError } from '../common/app-error';
import { ROOT_LOGGER } from '../common/logger.token';
import { QuotaDatabase } from '../database/database';
import type { HistoryReason } from './entities/quota-history.entity';
import { MembersRepository } from './members.repository';
import { StatementRepository, type ReasonTotal } from './statement.repository';

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
 * An instant the ledger can answer for: given, and not after now. The ledger of a future instant
 * is not written yet, so any answer would be a guess.
 */
export function pastInstant(field: string, value: string, now: Date): Date {
  const instant = new Date(value);
  if (Number.isNaN(instant.getTime())) {
    throw new ValidationFailedError([{ field, message: `${field} must be an ISO-8601 timestamp` }]);
  }
  if (instant > now) throw new ValidationFailedError([{ field, message: `${field} must not be in the future` }]);
  return instant;
}

/** The error for an instant before the member's first ledger row: it had no balance yet. */
export function noBalanceYet(): AppError {
  return new AppError('not_found', 'The member had no balance at that instant (it is before its first ledger row).');
}

/** A member's account statement over a window, from the ledger in time order. */
@Injectable()
export class StatementService {
  constructor(
    private readonly db: QuotaDatabase,
    private readonly members: MembersRepository,
    private readonly statements: StatementRepository,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
  ) {}

  async statement(memberId: string, window: { from?: string; to?: string }): Promise<Statement> {
    const now = new Date();
    const to = window.to === undefined ? now : pastInstant('to', window.to, now);
    const requestedFrom = window.from === undefined ? undefined : pastInstant('from', window.from, now);
    if (requestedFrom && requestedFrom > to) {
      throw new ValidationFailedError([{ field: 'from', message: 'from must not be after to' }]);
    }
    return this.db.read(async (s) => {
      const member = await this.members.findById(s, memberId);
      if (!member) throw new NotFoundError('Member');
      // The default window starts with the member; `to` before its creation leaves an empty window.
      const from = requestedFrom ?? (member.createdAt < to ? member.createdAt : to);
      const figures = await this.statements.statement(s, memberId, from, to);
      let units = 0;
      for (const total of figures.totals.values()) units += total.units;
      if (figures.opening + units !== figures.closing) {
        // Only ledger rows whose created_at runs against their id order (clocks of two writers
        // apart) can do this; the figures are still the ledger's, so they are answered as read.
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
        totals: figures.totals,
      };
    });
  }
}
