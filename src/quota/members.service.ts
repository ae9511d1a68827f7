import { Injectable } from '@nestjs/common';
import { AuditService } from '../audit/audit.service';
import { actorId, type Actor } from './actor';
import { NotFoundError, ValidationFailedError } from '../common/app-error';
import { LedgerService, type NewAccount } from './ledger.service';
import { QuotaDatabase } from '../database/database';
import { MembersRepository } from './members.repository';
import { memberJson, type MemberView } from './quota.views';

export interface MemberChanges {
  readonly membershipType?: string;
  readonly isActive?: boolean;
}

export interface MemberPage {
  readonly members: MemberView[];
  readonly total: number;
}

@Injectable()
export class MembersService {
  constructor(
    private readonly db: QuotaDatabase,
    private readonly members: MembersRepository,
    private readonly ledger: LedgerService,
    private readonly audit: AuditService,
  ) {}

  async create(actor: Actor, account: NewAccount): Promise<MemberView> {
    const [member] = await this.open(actor, [account], false);
    return member;
  }

  /** All or nothing: one transaction, refused as a whole if any external id exists or repeats. */
  async createBatch(actor: Actor, accounts: readonly NewAccount[]): Promise<MemberView[]> {
    const seen = new Set<string>();
    const repeated = new Set<string>();
    for (const account of accounts) {
      if (seen.has(account.externalId)) repeated.add(account.externalId);
      seen.add(account.externalId);
    }
    if (repeated.size > 0) {
      throw new ValidationFailedError(
        [...repeated].sort().map((externalId) => ({
          field: 'members',
          message: `external_id "${externalId}" appears more than once`,
        })),
      );
    }
    return this.open(actor, accounts, true);
  }

  async list(filter: { membershipType?: string; page: number; perPage: number }): Promise<MemberPage> {
    return this.db.read(async (s) => {
      const total = await this.members.count(s, filter.membershipType);
      const members = await this.members.page(
        s,
        filter.membershipType,
        filter.perPage,
        (filter.page - 1) * filter.perPage,
      );
      return { members, total };
    });
  }

  async get(id: string): Promise<MemberView> {
    const member = await this.db.read((s) => this.members.findById(s, id));
    if (!member) throw new NotFoundError('Member');
    return member;
  }

  /**
   * A type change shifts the balance by the difference of the two types' max_quota (floored at
   * 0) through the ledger; `is_active` switches consumption off or on.
   */
  async update(actor: Actor, id: string, changes: MemberChanges): Promise<MemberView> {
    return this.db.transaction(
      async (s) => {
        const before = await this.members.findById(s, id, true);
        if (!before) throw new NotFoundError('Member');
        let changed = false;
        if (changes.membershipType !== undefined) {
          changed = (await this.ledger.changeMembershipType(s, id, changes.membershipType, actorId(actor))) !== null;
        }
        if (changes.isActive !== undefined && changes.isActive !== before.isActive) {
          await this.members.setActive(s, id, changes.isActive);
          changed = true;
        }
        if (!changed) return before;
        const after = (await this.members.findById(s, id))!;
        await this.audit.record(s.manager, {
          actor,
          action: 'member.update',
          entityType: 'member',
          entityId: id,
          before: memberJson(before),
          after: memberJson(after),
        });
        return after;
      },
      { entityManager: true },
    );
  }

  private async open(actor: Actor, accounts: readonly NewAccount[], batch: boolean): Promise<MemberView[]> {
    return this.db.transaction(
      async (s) => {
        const ids = await this.ledger.openAccounts(s, accounts, actorId(actor), { batch });
        const members = await this.members.findByIds(s, ids);
        await this.audit.recordMany(
          s.manager,
          members.map((member) => ({
            actor,
            action: 'member.create',
            entityType: 'member',
            entityId: member.id,
            before: null,
            after: memberJson(member),
          })),
        );
        return members;
      },
      { entityManager: true },
    );
  }
}
