import { Injectable } from '@nestjs/common';
import { AuditService } from '../audit/audit.service';
import type { Principal } from '../auth/principal';
import { AppError, NotFoundError, ValidationFailedError } from '../common/app-error';
import { AppConfig } from '../config/app-config';
import { ConfigCache } from './config-cache';
import type { AdjustReason } from './dto/quota.dto';
import type { ResetPeriod } from './entities/quota-config.entity';
import {
  IdempotencyService,
  type IdempotentOperation,
  type IdempotentOutcome,
  type IdempotentRequest,
} from './idempotency.service';
import { LedgerService, type LedgerChange, type LedgerEntry } from './ledger.service';
import { QuotaMetrics, type ConsumptionResult } from './quota.metrics';
import { QuotaDatabase } from '../database/database';
import { type TransactionOptions } from '../database/sql-session';
import { MembersRepository } from './members.repository';
import { InsufficientQuotaError, type ConfigInactiveError, type MemberInactiveError } from './quota.errors';
import type { QuotaConfigView } from './quota.views';
import { nextResetAt } from './reset-schedule';
import { BalancesInTimeRepository } from './balances-in-time.repository';
import { noBalanceYet, pastInstant } from './past-instant';

/** X-Quota-Limit (the type's max_quota), X-Quota-Remaining and X-Quota-Reset (next reset, ISO-8601). */
export type QuotaHeaders = Readonly<Record<string, string>>;

export interface QuotaChange {
  readonly entry: LedgerEntry;
  readonly replayed: boolean;
  readonly headers: QuotaHeaders;
}

export interface BalanceView {
  readonly memberId: string;
  readonly externalId: string;
  readonly membershipType: string;
  /** Now, or at `asOf` when asked for an instant. */
  readonly balance: number;
  /** Units in the member's open holds (at `asOf` when asked for an instant). */
  readonly held: number;
  readonly maxQuota: number;
  readonly resetPeriod: ResetPeriod;
  readonly periodStartedAt: Date | null;
  readonly nextResetAt: Date | null;
  readonly isActive: boolean;
  readonly configActive: boolean;
  /** The instant asked for; the other fields describe now. */
  readonly asOf?: Date;
}

export interface AmountRequest {
  readonly amount: number;
  readonly note?: string;
}

export interface AdjustRequest {
  readonly delta?: number;
  readonly newQuota?: number;
  readonly reason?: AdjustReason;
  readonly note?: string;
}

/** Consumption, refunds and admin adjustments of one member's balance, all through the ledger. */
@Injectable()
export class QuotaService {
  constructor(
    private readonly db: QuotaDatabase,
    private readonly members: MembersRepository,
    private readonly ledger: LedgerService,
    private readonly idempotency: IdempotencyService,
    private readonly configs: ConfigCache,
    private readonly audit: AuditService,
    private readonly metrics: QuotaMetrics,
    private readonly config: AppConfig,
    private readonly statements: BalancesInTimeRepository,
  ) {}

  /** A member's token reaches only its own member; any other id answers as if it did not exist. */
  assertReachable(caller: Principal, memberId: string): void {
    if (caller.role === 'member' && caller.memberId !== memberId) throw new NotFoundError('Member');
  }

  ownMemberId(caller: Principal): string {
    if (!caller.memberId) throw new NotFoundError('Member');
    return caller.memberId;
  }

  /**
   * A member's balance now, or as the ledger says it stood at `at` (an ISO-8601 instant, not in the
   * future). The headers describe now either way.
   */
  async balance(
    caller: Principal,
    memberId: string,
    at?: string,
  ): Promise<{ view: BalanceView; headers: QuotaHeaders }> {
    this.assertReachable(caller, memberId);
    const now = new Date();
    const asOf = at === undefined ? undefined : pastInstant('at', at, now);
    const { member, past } = await this.db.read(async (s) => {
      const found = await this.members.balanceWithConfig(s, memberId);
      return {
        member: found,
        past: found && asOf ? await this.statements.balanceAt(s, memberId, asOf) : undefined,
      };
    });
    if (!member) throw new NotFoundError('Member');
    if (past && past.balance === null) throw noBalanceYet();
    const view: BalanceView = {
      memberId: member.memberId,
      externalId: member.externalId,
      membershipType: member.membershipType,
      balance: past ? past.balance! : member.balance,
      held: past ? past.held : member.held,
      maxQuota: member.maxQuota,
      resetPeriod: member.resetPeriod,
      periodStartedAt: member.periodStartedAt,
      nextResetAt: nextResetAt(member.resetPeriod, now, this.config.quota.timezone),
      isActive: member.isActive,
      configActive: member.configActive,
      ...(asOf ? { asOf } : {}),
    };
    return { view, headers: this.headers(member.balance, { maxQuota: view.maxQuota, resetPeriod: view.resetPeriod }) };
  }

  async consume(caller: Principal, memberId: string, request: AmountRequest, key?: string): Promise<QuotaChange> {
    this.assertReachable(caller, memberId);
    try {
      const change = await this.changeBalance(caller, 'consume', { amount: request.amount, note: request.note }, key, {
        memberId,
        delta: -request.amount,
        reason: 'consumption',
        actor: caller.userId,
        note: request.note,
        idempotencyKey: key,
        requireActive: true,
        callerCheck: caller.pendingCheck,
      });
      this.countConsumption(change.config?.membershipType, change.replayed ? 'replayed' : 'success');
      return change;
    } catch (err) {
      throw await this.refusedConsumption(err);
    }
  }

  async refund(caller: Principal, memberId: string, request: AmountRequest, key?: string): Promise<QuotaChange> {
    this.assertReachable(caller, memberId);
    return this.changeBalance(caller, 'refund', { amount: request.amount, note: request.note }, key, {
      memberId,
      delta: request.amount,
      reason: 'refund',
      actor: caller.userId,
      note: request.note,
      idempotencyKey: key,
      requireActive: true,
      callerCheck: caller.pendingCheck,
    });
  }

  /** An operator's correction: `delta` or `new_quota` (exactly one), recorded in the audit log too. */
  async adjust(caller: Principal, memberId: string, request: AdjustRequest, key?: string): Promise<QuotaChange> {
    if ((request.delta === undefined) === (request.newQuota === undefined)) {
      throw new ValidationFailedError([
        { field: 'delta', message: 'exactly one of delta and new_quota must be given' },
      ]);
    }
    const reason = request.reason ?? 'manual_adjustment';
    const body = { delta: request.delta, new_quota: request.newQuota, reason, note: request.note };
    return this.change(
      caller,
      memberId,
      'adjust',
      body,
      key,
      async (s) => {
        const common = { memberId, reason, actor: caller.userId, note: request.note, idempotencyKey: key };
        const entry =
          request.newQuota !== undefined
            ? await this.ledger.setBalance(s, { ...common, newBalance: request.newQuota })
            : await this.ledger.apply(s, { ...common, delta: request.delta! });
        await this.audit.record(s.manager, {
          actor: caller,
          action: 'member.adjust',
          entityType: 'member',
          entityId: memberId,
          before: { quota_balance: entry.balanceAfter - entry.delta },
          after: {
            quota_balance: entry.balanceAfter,
            delta: entry.delta,
            reason,
            note: request.note ?? null,
            history_id: entry.historyId,
          },
        });
        return entry;
      },
      { entityManager: true },
    );
  }

  private async change(
    caller: Principal,
    memberId: string,
    operation: IdempotentOperation,
    body: Record<string, unknown>,
    key: string | undefined,
    work: Parameters<IdempotencyService['run']>[1],
    options: TransactionOptions = {},
  ): Promise<QuotaChange & { config: QuotaConfigView | null }> {
    const request: IdempotentRequest | null =
      key === undefined ? null : { scope: caller.userId, key, operation, memberId, body };
    return this.answer(await this.idempotency.run(request, work, options));
  }

  /** A plain ledger change (consume, refund): one round trip on MySQL (IdempotencyService.runChange). */
  private async changeBalance(
    caller: Principal,
    operation: IdempotentOperation,
    body: Record<string, unknown>,
    key: string | undefined,
    change: LedgerChange,
  ): Promise<QuotaChange & { config: QuotaConfigView | null }> {
    const request: IdempotentRequest | null =
      key === undefined ? null : { scope: caller.userId, key, operation, memberId: change.memberId, body };
    const outcome = await this.idempotency.runChange(request, change);
    // A replay wrote nothing, so nothing checked the caller on the way (see PendingCallerCheck).
    await caller.pendingCheck?.settle();
    return this.answer(outcome);
  }

  private async answer({
    entry,
    replayed,
  }: IdempotentOutcome): Promise<QuotaChange & { config: QuotaConfigView | null }> {
    const config = await this.configs.byIdOrNull(entry.configId);
    return { entry, replayed, config, headers: this.headers(entry.balanceAfter, config) };
  }

  /** The X-Quota-* headers for a balance left under the member's config (by id). */
  async headersFor(remaining: number, configId: string): Promise<QuotaHeaders> {
    return this.headers(remaining, await this.configs.byIdOrNull(configId));
  }

  /** A refusal of insufficient quota with the X-Quota-* headers of the balance it names; other errors as they are. */
  async withQuotaHeaders(err: unknown): Promise<unknown> {
    if (!(err instanceof InsufficientQuotaError) || err.options.headers) return err;
    const config = await this.configs.byTypeOrNull(err.membershipType).catch(() => null);
    return new InsufficientQuotaError(
      err.balance,
      err.requested,
      err.membershipType,
      this.headers(err.balance, config),
    );
  }

  private headers(remaining: number, config: Pick<QuotaConfigView, 'maxQuota' | 'resetPeriod'> | null): QuotaHeaders {
    const reset = config ? nextResetAt(config.resetPeriod, new Date(), this.config.quota.timezone) : null;
    return {
      ...(config ? { 'X-Quota-Limit': String(config.maxQuota) } : {}),
      'X-Quota-Remaining': String(remaining),
      ...(reset ? { 'X-Quota-Reset': reset.toISOString() } : {}),
    };
  }

  /** Counts a refused consume and gives the refusal its quota headers where the balance is known. */
  private async refusedConsumption(err: unknown): Promise<unknown> {
    if (!(err instanceof AppError)) {
      this.countConsumption(undefined, 'error');
      return err;
    }
    const typed = err as Partial<InsufficientQuotaError | MemberInactiveError | ConfigInactiveError>;
    const membershipType = typeof typed.membershipType === 'string' ? typed.membershipType : undefined;
    const results: Record<string, ConsumptionResult> = {
      insufficient_quota: 'insufficient_quota',
      member_inactive: 'member_inactive',
      config_inactive: 'config_inactive',
      not_found: 'not_found',
      idempotency_key_in_use: 'idempotency_conflict',
      idempotency_key_mismatch: 'idempotency_conflict',
    };
    this.countConsumption(membershipType, results[err.code] ?? 'error');
    return this.withQuotaHeaders(err);
  }

  private countConsumption(membershipType: string | undefined, result: ConsumptionResult): void {
    this.metrics.consumptions.inc({ membership_type: membershipType ?? 'unknown', result });
  }
}
