import { Injectable } from '@nestjs/common';
import type { PendingCallerCheck } from '../auth/principal';
import { INVALID_TOKEN } from '../auth/token-errors';
import { NotFoundError } from '../common/app-error';
import type { HistoryReason } from './entities/quota-history.entity';
import { QuotaMetrics } from './quota.metrics';
import { QuotaDatabase } from '../database/database';
import { dbErrorKind, type SqlSession, type Statement } from '../database/sql-session';
import { LedgerRepository, MAX_BALANCE, type MemberState, type UpdatedBalance } from './ledger.repository';
import {
  BalanceOutOfRangeError,
  ConfigInactiveError,
  HeldOutOfRangeError,
  InsufficientQuotaError,
  MemberInactiveError,
  MembersExistError,
  NegativeBalanceError,
  UnknownMembershipTypeError,
} from './quota.errors';

export { MAX_BALANCE };

export interface LedgerChange {
  readonly memberId: string;
  /** Signed change of the balance. */
  readonly delta: number;
  readonly reason: HistoryReason;
  /** User id of the caller, or "system". */
  readonly actor: string;
  readonly note?: string | null;
  readonly idempotencyKey?: string | null;
  readonly operationId?: string | null;
  /** Consumption and refunds need an active member with an active config; admin changes do not. */
  readonly requireActive?: boolean;
  /** The caller's token, checked by the update itself (see PendingCallerCheck). */
  readonly callerCheck?: PendingCallerCheck;
  /** A hold's change: how `members.quota_held` moves with the balance (+amount when made, -amount when settled). */
  readonly heldDelta?: number;
  /** The hold the history row belongs to. */
  readonly holdId?: string;
}

export interface LedgerEntry {
  readonly historyId: string;
  readonly memberId: string;
  readonly delta: number;
  readonly balanceAfter: number;
  readonly reason: HistoryReason;
  readonly configId: string;
  /** The hold the row belongs to, for a hold's rows. */
  readonly holdId?: string;
}

export interface NewAccount {
  readonly externalId: string;
  readonly membershipType: string;
  /** The opening balance; the type's max_quota when absent. */
  readonly initialQuota?: number;
}

/** How many times a conditional update that matched nothing, with no reason found, is retried. */
const MAX_RECHECKS = 3;

/**
 * The rules of every balance change. The change itself is LedgerRepository's conditional UPDATE,
 * evaluated by the database (`quota_balance + delta` within 0..2^31-1: never read, compute and
 * write back in JavaScript) plus exactly one history row, inside the caller's transaction; this
 * service decides what a change that matched nothing is refused with, and counts the changes.
 */
@Injectable()
export class LedgerService {
  constructor(
    private readonly db: QuotaDatabase,
    private readonly ledger: LedgerRepository,
    private readonly metrics: QuotaMetrics,
  ) {}

  /**
   * `linkHold`, for a new hold: runs once the balance update matched and before the history row,
   * and returns the id of the hold row it inserted (so the row exists only with the change, and
   * the history row names it).
   */
  async apply(s: SqlSession, change: LedgerChange, linkHold?: () => Promise<string>): Promise<LedgerEntry> {
    for (let check = 0; ; check++) {
      const updated = await this.ledger.applyDelta(s, change);
      if (updated) {
        const linked = linkHold ? { ...change, holdId: await linkHold() } : change;
        const historyId = await this.ledger.insertHistory(s, linked, updated.balance);
        return this.applied(linked, updated, historyId);
      }
      const state = await this.ledger.memberState(s, change);
      this.refuse(state, change);
      // The row changed between the two statements in a way that now allows the change: try again.
      if (check + 1 >= MAX_RECHECKS) throw new Error(`ledger update for member ${change.memberId} kept missing`);
    }
  }

  /**
   * apply() as a transaction of its own in one round trip (QuotaDatabase.batch, MySQL): the
   * conditional update, then the history row, inserted only when the update matched
   * (`ROW_COUNT()` is the preceding statement's), then the caller's `followUp` statement (the
   * idempotency claim), which must likewise write only when the history row was written
   * (`WHERE ROW_COUNT() = 1`). The counts that come back are checked against each other; a
   * refusal is explained by a read afterwards, outside the transaction.
   */
  async applyAlone(
    change: LedgerChange,
    followUp?: Statement,
    options: { retryLockTimeouts?: boolean; holdInsert?: Statement } = {},
  ): Promise<LedgerEntry> {
    // A new hold: its row is inserted between the update and the history row that names it.
    const { holdInsert } = options;
    const statements: Statement[] = holdInsert
      ? this.ledger.holdStatements(change, holdInsert)
      : this.ledger.changeStatements(change);
    if (followUp) statements.push(followUp);
    for (let check = 0; ; check++) {
      const [update, ...written] = await this.db.batch(statements, { retryLockTimeouts: options.retryLockTimeouts });
      const hold = holdInsert ? written[0] : undefined;
      const history = written[holdInsert ? 1 : 0];
      const updated = this.ledger.batchedChange(update);
      if (updated) {
        if (written.some((result) => result.affected !== 1) || history.insertId === null || hold?.insertId === null) {
          throw new Error(`ledger batch for member ${change.memberId} wrote an unexpected number of rows`);
        }
        const linked = hold?.insertId ? { ...change, holdId: hold.insertId } : change;
        return this.applied(linked, updated, history.insertId);
      }
      if (written.some((result) => result.affected !== 0)) {
        throw new Error(`ledger batch for member ${change.memberId} wrote rows without a balance change`);
      }
      const state = await this.db.read((s) => this.ledger.memberState(s, change));
      this.refuse(state, change);
      if (check + 1 >= MAX_RECHECKS) throw new Error(`ledger update for member ${change.memberId} kept missing`);
    }
  }

  private applied(change: LedgerChange, updated: UpdatedBalance, historyId: string): LedgerEntry {
    // The update matched, so did its caller condition, in this very transaction.
    if (change.callerCheck) change.callerCheck.confirmed = true;
    this.metrics.ledgerChanges.inc({ reason: change.reason });
    return {
      historyId,
      memberId: change.memberId,
      delta: change.delta,
      balanceAfter: updated.balance,
      reason: change.reason,
      configId: updated.configId,
      holdId: change.holdId,
    };
  }

  /** Sets the balance to an exact value: the row is locked, then the difference is applied as a delta. */
  async setBalance(s: SqlSession, change: Omit<LedgerChange, 'delta'> & { newBalance: number }): Promise<LedgerEntry> {
    const member = await this.ledger.lockMember(s, change.memberId);
    if (!member) throw new NotFoundError('Member');
    const { newBalance, ...rest } = change;
    return this.apply(s, { ...rest, delta: newBalance - member.balance });
  }

  /**
   * Creates members with their opening balances and one `initial_grant` row each, set-based.
   * Refuses unknown or inactive types and external ids that already exist.
   */
  async openAccounts(
    s: SqlSession,
    accounts: readonly NewAccount[],
    actor: string,
    options: { batch?: boolean } = {},
  ): Promise<string[]> {
    const types = [...new Set(accounts.map((a) => a.membershipType))];
    const byType = new Map((await this.ledger.typeConfigs(s, types)).map((c) => [c.membershipType, c]));
    accounts.forEach((account, index) => {
      const config = byType.get(account.membershipType);
      const field = options.batch ? `members.${index}.membership_type` : 'membership_type';
      if (!config) throw new UnknownMembershipTypeError(field, account.membershipType);
      if (!config.isActive) throw new ConfigInactiveError(account.membershipType);
    });

    const externalIds = accounts.map((a) => a.externalId);
    await this.refuseExisting(s, externalIds);

    const opening = accounts.map((account) => account.initialQuota ?? byType.get(account.membershipType)!.maxQuota);
    let ids: string[];
    try {
      ids = await this.ledger.insertMembers(
        s,
        accounts.map((account, i) => ({
          externalId: account.externalId,
          membershipType: account.membershipType,
          balance: opening[i],
        })),
      );
    } catch (err) {
      // Another request created one of them since the check above; a locking read sees it.
      if (dbErrorKind(err) === 'duplicate') await this.refuseExisting(s, externalIds, true);
      throw err;
    }
    // Each opening balance becomes the member's first ledger row.
    await this.ledger.insertOpeningHistory(s, ids, opening, actor);
    this.metrics.ledgerChanges.inc({ reason: 'initial_grant' }, accounts.length);
    return ids;
  }

  /**
   * Moves a member to another membership type. Its balance shifts by the difference between the
   * two types' max_quota (an upgrade grants the extra quota now, a downgrade takes it away),
   * floored at 0, and one `membership_change` row records it (delta 0 when nothing moved).
   * Returns null when the member already has that type.
   */
  async changeMembershipType(
    s: SqlSession,
    memberId: string,
    newType: string,
    actor: string,
  ): Promise<LedgerEntry | null> {
    // Only the member's row is locked: a lock on the config row would queue every consume of
    // the type (their update reads it) behind this change.
    const from = await this.ledger.lockMember(s, memberId);
    if (!from) throw new NotFoundError('Member');
    if (from.membershipType === newType) return null;
    const configs = await this.ledger.typeConfigs(s, [from.membershipType, newType]);
    const source = configs.find((c) => c.membershipType === from.membershipType);
    const target = configs.find((c) => c.membershipType === newType);
    if (!target) throw new UnknownMembershipTypeError('membership_type', newType);
    if (!target.isActive) throw new ConfigInactiveError(newType);

    const balance = from.balance;
    const shifted = balance + target.maxQuota - (source?.maxQuota ?? 0);
    const delta = Math.min(MAX_BALANCE, Math.max(0, shifted)) - balance;
    // The row is locked (FOR UPDATE; SQLite has one writer), so the condition cannot fail here.
    if (!(await this.ledger.moveMembershipType(s, memberId, newType, delta))) {
      throw new Error(`membership change of member ${memberId} matched no row`);
    }
    const change: LedgerChange = {
      memberId,
      delta,
      reason: 'membership_change',
      actor,
      note: `${from.membershipType} -> ${newType}`,
    };
    const historyId = await this.ledger.insertHistory(s, change, balance + delta, {
      from: from.membershipType,
      to: newType,
    });
    this.metrics.ledgerChanges.inc({ reason: 'membership_change' });
    return {
      historyId,
      memberId,
      delta,
      balanceAfter: balance + delta,
      reason: 'membership_change',
      configId: target.id,
    };
  }

  /** Says why a conditional update matched nothing; returns when every condition holds (again). */
  private refuse(state: MemberState | null, change: LedgerChange): void {
    if (!state) throw new NotFoundError('Member');
    // The caller's condition comes first: when another one failed, the caller's held, and it is
    // settled for this request (a refusal about the member is then the answer, not a 401).
    if (change.callerCheck && state.failed !== 'callerHolds') change.callerCheck.confirmed = true;
    switch (state.failed) {
      case 'callerHolds':
        throw INVALID_TOKEN();
      case 'memberActive':
        throw new MemberInactiveError(state.membershipType);
      case 'configActive':
        throw new ConfigInactiveError(state.membershipType);
      case 'notBelowZero':
        if (change.reason === 'consumption' || change.reason === 'hold')
          throw new InsufficientQuotaError(state.balance, -change.delta, state.membershipType);
        throw new NegativeBalanceError(state.balance);
      case 'notAboveMax':
        throw new BalanceOutOfRangeError(state.balance);
      case 'heldNotAboveMax':
        throw new HeldOutOfRangeError();
      case null:
        return;
    }
  }

  private async refuseExisting(s: SqlSession, externalIds: readonly string[], locking = false): Promise<void> {
    const existing = await this.ledger.existingExternalIds(s, externalIds, locking);
    if (existing.length > 0) throw new MembersExistError(existing);
  }
}
