import { KeysetCursor } from '../common/keyset-cursor';
import { Injectable } from '@nestjs/common';
import type { Principal } from '../auth/principal';
import { NotFoundError, ValidationFailedError } from '../common/app-error';
import { QuotaDatabase } from '../database/database';
import { EventsRepository } from '../events/events.repository';
import type { SqlSession } from '../database/sql-session';
import { IdempotencyService, type IdempotentOperation, type IdempotentRequest } from './idempotency.service';
import { HoldsRepository, type HoldRow, type HoldsFilter, type NewHold, type Settlement } from './holds.repository';
import { LedgerService, type LedgerEntry } from './ledger.service';
import { QuotaMetrics } from './quota.metrics';
import { HoldExpiredError, HoldSettledError } from './quota.errors';
import { QuotaService, type QuotaHeaders } from './quota.service';

export const HOLD_TTL_DEFAULT_SECONDS = 300;
export const HOLD_TTL_MAX_SECONDS = 86_400;

/** A hold as a client sees it: `status` is `expired` as soon as an open hold's time has passed. */
export type HoldView = Omit<HoldRow, 'id' | 'createdBy'> & { readonly holdId: string };

/** The answer to making, committing or releasing a hold: the hold and what the member can still spend. */
export interface HoldChange {
  readonly hold: HoldView;
  readonly balance: number;
  readonly replayed: boolean;
  readonly headers: QuotaHeaders;
}

export interface NewHoldRequest {
  readonly amount: number;
  readonly ttlSeconds?: number;
  readonly note?: string;
}

export interface HoldsPage {
  readonly holds: HoldView[];
  readonly nextCursor: string | null;
}

export function holdView(row: HoldRow, now = new Date()): HoldView {
  const lapsed = row.status === 'held' && row.expiresAt.getTime() <= now.getTime();
  return {
    holdId: row.id,
    memberId: row.memberId,
    amount: row.amount,
    status: lapsed ? 'expired' : row.status,
    committedAmount: lapsed ? 0 : row.committedAmount,
    releasedAmount: lapsed ? row.amount : row.releasedAmount,
    note: row.note,
    createdAt: row.createdAt,
    expiresAt: row.expiresAt,
    settledAt: row.settledAt,
  };
}

/** The API shape of a hold (and the data of its hold.expired event). */
export function holdJson(hold: HoldView) {
  return {
    hold_id: hold.holdId,
    member_id: hold.memberId,
    amount: hold.amount,
    status: hold.status,
    committed_amount: hold.committedAmount,
    released_amount: hold.releasedAmount,
    note: hold.note,
    created_at: hold.createdAt.toISOString(),
    expires_at: hold.expiresAt.toISOString(),
    settled_at: hold.settledAt?.toISOString() ?? null,
  };
}

const CURSOR = new KeysetCursor('q');

/**
 * Holds: units reserved now, settled later. Making one takes the units from the balance at once
 * (a `hold` ledger row, with `members.quota_held` counting them), so no consume or other hold can
 * spend them. Settling gives all of them back (a `hold_release` row) and, for a commit, consumes
 * the committed part (a `consumption` row): stats and anomaly detection see committed units as
 * consumption and nothing else. Each settlement is one transaction whose first statement moves
 * the hold out of `held` only if it is still there (HoldsRepository), so commit, release and the
 * expiry sweep can race and exactly one writes.
 */
@Injectable()
export class HoldsService {
  constructor(
    private readonly db: QuotaDatabase,
    private readonly holds: HoldsRepository,
    private readonly ledger: LedgerService,
    private readonly idempotency: IdempotencyService,
    private readonly quota: QuotaService,
    private readonly metrics: QuotaMetrics,
    private readonly events: EventsRepository,
  ) {}

  async create(caller: Principal, memberId: string, request: NewHoldRequest, key?: string): Promise<HoldChange> {
    this.quota.assertReachable(caller, memberId);
    const ttlSeconds = request.ttlSeconds ?? HOLD_TTL_DEFAULT_SECONDS;
    const body = { amount: request.amount, ttl_seconds: request.ttlSeconds, note: request.note };
    const createdAt = new Date();
    const made: NewHold = {
      memberId,
      amount: request.amount,
      note: request.note ?? null,
      createdBy: caller.userId,
      createdAt,
      expiresAt: new Date(createdAt.getTime() + ttlSeconds * 1000),
    };
    try {
      // One round trip on MySQL, as a consume: the update, the hold row, its `hold` row and the key.
      const { entry, replayed } = await this.idempotency.runChange(
        this.keyed(caller, key, 'hold', memberId, body),
        {
          memberId,
          delta: -request.amount,
          heldDelta: request.amount,
          reason: 'hold',
          actor: caller.userId,
          note: request.note,
          idempotencyKey: key,
          requireActive: true,
          callerCheck: caller.pendingCheck,
        },
        { statement: this.holds.insertAfterChangeStatement(made), insert: (s) => this.holds.insert(s, made) },
      );
      // A replay wrote nothing, so nothing checked the caller on the way (see PendingCallerCheck).
      await caller.pendingCheck?.settle();
      // A replay answers what the first request was told: the hold as it was made.
      const hold: HoldRow = replayed
        ? {
            ...(await this.load(entry.holdId)),
            status: 'held',
            committedAmount: null,
            releasedAmount: null,
            settledAt: null,
          }
        : { ...made, id: entry.holdId!, status: 'held', committedAmount: null, releasedAmount: null, settledAt: null };
      if (!replayed) this.metrics.holdsCreated.inc();
      return {
        hold: holdView(hold, hold.createdAt),
        balance: entry.balanceAfter,
        replayed,
        headers: await this.quota.headersFor(entry.balanceAfter, entry.configId),
      };
    } catch (err) {
      throw await this.quota.withQuotaHeaders(err);
    }
  }

  async get(caller: Principal, holdId: string): Promise<HoldView> {
    return holdView(await this.visible(caller, holdId, false));
  }

  /** Commits `amount` (the whole hold when absent) and gives the rest back. */
  async commit(caller: Principal, holdId: string, amount: number | undefined, key?: string): Promise<HoldChange> {
    const hold = await this.visible(caller, holdId, true);
    const committed = amount ?? hold.amount;
    if (committed > hold.amount) {
      throw new ValidationFailedError([
        { field: 'amount', message: `amount must not be more than the hold's ${hold.amount}` },
      ]);
    }
    return this.settle(caller, hold, 'hold_commit', { hold_id: holdId, amount }, key, {
      status: 'committed',
      committedAmount: committed,
      releasedAmount: hold.amount - committed,
    });
  }

  /** Gives every unit of the hold back. */
  async release(caller: Principal, holdId: string, key?: string): Promise<HoldChange> {
    const hold = await this.visible(caller, holdId, true);
    return this.settle(caller, hold, 'hold_release', { hold_id: holdId }, key, {
      status: 'released',
      committedAmount: 0,
      releasedAmount: hold.amount,
    });
  }

  async list(filter: HoldsFilter & { cursor?: string }, limit: number): Promise<HoldsPage> {
    const now = new Date();
    const query: HoldsFilter = {
      memberId: filter.memberId,
      status: filter.status,
      beforeId: filter.cursor === undefined ? undefined : CURSOR.decode(filter.cursor),
    };
    // One row more than asked says whether another page follows.
    const rows = await this.db.read((s) => this.holds.newestFirst(s, query, now, limit + 1));
    const page = rows.slice(0, limit);
    return {
      holds: page.map((row) => holdView(row, now)),
      nextCursor: rows.length > limit ? CURSOR.encode(page[page.length - 1].id) : null,
    };
  }

  /**
   * Gives back the units of one open hold past its time, exactly once (false when it was settled
   * or expired by someone else first), and records hold.expired with it. Used by the expiry sweep,
   * and at once when a settlement finds the hold lapsed.
   */
  async expire(hold: { id: string; memberId: string; amount: number }, now = new Date()): Promise<boolean> {
    const expired = await this.db.transaction(async (s) => {
      if (!(await this.holds.expire(s, hold.id, now))) return false;
      await this.giveBack(s, hold, 'system', null);
      const row = await this.holds.find(s, hold.id);
      if (row) {
        await this.events.record(s, {
          type: 'hold.expired',
          data: holdJson(holdView(row, now)),
          source: `hold:${row.id}`,
          at: now,
        });
      }
      return true;
    });
    if (expired) this.metrics.holdsSettled.inc({ outcome: 'expired' });
    return expired;
  }

  private async settle(
    caller: Principal,
    hold: HoldRow,
    operation: IdempotentOperation,
    body: Record<string, unknown>,
    key: string | undefined,
    settlement: Settlement,
  ): Promise<HoldChange> {
    let lapsed = false;
    let settledAt: Date | undefined;
    try {
      const { value, replayed } = await this.idempotency.runKeyed(
        this.keyed(caller, key, operation, hold.memberId, body),
        async (s) => {
          const now = new Date();
          settledAt = now;
          if (!(await this.holds.settle(s, hold.id, settlement, now))) {
            const current = (await this.holds.find(s, hold.id)) ?? hold;
            if (current.status === 'held' || current.status === 'expired') {
              lapsed = current.status === 'held';
              throw new HoldExpiredError();
            }
            throw new HoldSettledError(current.status);
          }
          let entry = await this.giveBack(s, hold, caller.userId, key ?? null);
          if (settlement.committedAmount > 0) {
            entry = await this.ledger.apply(s, {
              memberId: hold.memberId,
              delta: -settlement.committedAmount,
              reason: 'consumption',
              actor: caller.userId,
              idempotencyKey: key,
              holdId: hold.id,
            });
          }
          return entry;
        },
        (rows) => Promise.resolve(rows[0]),
      );
      if (!replayed) this.metrics.holdsSettled.inc({ outcome: settlement.status });
      // A replay reads the hold as its first settlement left it; a settlement knows it already.
      const settled: HoldRow =
        replayed || settledAt === undefined ? await this.load(hold.id) : { ...hold, ...settlement, settledAt };
      return {
        hold: holdView(settled, settledAt),
        balance: value.balanceAfter,
        replayed,
        headers: await this.quota.headersFor(value.balanceAfter, value.configId),
      };
    } catch (err) {
      // A hold found past its time is given back now rather than at the sweep's next run. Its
      // caller's settlement may still have won meanwhile (it read the clock before this one
      // found the hold lapsed, and wrote after): then the answer is that it was settled.
      if (lapsed && !(await this.expire(hold).catch(() => false))) {
        const current = await this.db.read((s) => this.holds.find(s, hold.id)).catch(() => null);
        if (current?.status === 'committed' || current?.status === 'released') {
          throw new HoldSettledError(current.status);
        }
      }
      throw err;
    }
  }

  /** All of a hold's units back to the balance, and out of `quota_held`: one `hold_release` row. */
  private giveBack(
    s: SqlSession,
    hold: { id: string; memberId: string; amount: number },
    actor: string,
    key: string | null,
  ): Promise<LedgerEntry> {
    return this.ledger.apply(s, {
      memberId: hold.memberId,
      delta: hold.amount,
      heldDelta: -hold.amount,
      reason: 'hold_release',
      actor,
      idempotencyKey: key,
      holdId: hold.id,
    });
  }

  /**
   * The hold, if this caller may see it (`settling`: settle it): admins any; operators see any;
   * others only holds they made, and a member only holds of its own member. Anyone else is told
   * it does not exist.
   */
  private async visible(caller: Principal, holdId: string, settling: boolean): Promise<HoldRow> {
    const hold = await this.db.read((s) => this.holds.find(s, holdId));
    if (!hold) throw new NotFoundError('Hold');
    const mayRead =
      caller.role === 'admin' ||
      (caller.role === 'operator' && !settling) ||
      (caller.role === 'member'
        ? hold.memberId === caller.memberId && (!settling || hold.createdBy === caller.userId)
        : hold.createdBy === caller.userId);
    if (!mayRead) throw new NotFoundError('Hold');
    return hold;
  }

  private async load(holdId: string | undefined): Promise<HoldRow> {
    const hold = holdId === undefined ? null : await this.db.read((s) => this.holds.find(s, holdId));
    if (!hold) throw new Error(`a hold's ledger row names no hold (${holdId})`);
    return hold;
  }

  private keyed(
    caller: Principal,
    key: string | undefined,
    operation: IdempotentOperation,
    memberId: string,
    body: Record<string, unknown>,
  ): IdempotentRequest | null {
    return key === undefined ? null : { scope: caller.userId, key, operation, memberId, body };
  }
}
