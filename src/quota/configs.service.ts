import { Injectable } from '@nestjs/common';
import { AuditService } from '../audit/audit.service';
import { actorId, type Actor } from './actor';
import { NotFoundError } from '../common/app-error';
import { ConfigCache } from './config-cache';
import { OperationRecorder } from './ledger-bulk.service';
import type { ConfigApplyMode } from './dto/config.dto';
import type { ResetPeriod } from './entities/quota-config.entity';
import { QuotaDatabase } from '../database/database';
import { dbErrorKind } from '../database/sql-session';
import { ConfigsRepository } from './configs.repository';
import { ConfigInUseError, DuplicateMembershipTypeError } from './quota.errors';
import { configJson, type QuotaConfigView } from './quota.views';

export interface NewConfig {
  readonly membershipType: string;
  readonly maxQuota: number;
  readonly resetPeriod?: ResetPeriod;
  readonly isActive?: boolean;
  readonly description?: string | null;
}

export interface ConfigChanges {
  readonly maxQuota?: number;
  readonly resetPeriod?: ResetPeriod;
  readonly isActive?: boolean;
  readonly description?: string | null;
  readonly apply?: ConfigApplyMode;
}

@Injectable()
export class ConfigsService {
  constructor(
    private readonly db: QuotaDatabase,
    private readonly configs: ConfigsRepository,
    private readonly audit: AuditService,
    private readonly cache: ConfigCache,
    private readonly operations: OperationRecorder,
  ) {}

  list(filter: { isActive?: boolean }): Promise<QuotaConfigView[]> {
    return this.db.read((s) => this.configs.list(s, filter.isActive));
  }

  async get(id: string): Promise<QuotaConfigView> {
    const config = await this.db.read((s) => this.configs.findById(s, id));
    if (!config) throw new NotFoundError('Quota config');
    return config;
  }

  async create(actor: Actor, input: NewConfig): Promise<QuotaConfigView> {
    const created = await this.db.transaction(
      async (s) => {
        let id: string;
        try {
          id = await this.configs.insert(s, {
            membershipType: input.membershipType,
            maxQuota: input.maxQuota,
            resetPeriod: input.resetPeriod ?? 'none',
            isActive: input.isActive !== false,
            description: input.description ?? null,
          });
        } catch (err) {
          if (dbErrorKind(err) === 'duplicate') throw new DuplicateMembershipTypeError(input.membershipType);
          throw err;
        }
        const config = await this.configs.findById(s, id);
        await this.audit.record(s.manager, {
          actor,
          action: 'quota_config.create',
          entityType: 'quota_config',
          entityId: config!.id,
          before: null,
          after: configJson(config!),
        });
        return config!;
      },
      { entityManager: true },
    );
    this.cache.invalidate();
    return created;
  }

  /**
   * Changes a config. Members keep their balances until their next reset (`apply: next_reset`);
   * `delta` and `reset` propagate to every member as a background operation (reason
   * config_change), recorded in the same transaction as the change and queued once committed.
   */
  async update(
    actor: Actor,
    id: string,
    changes: ConfigChanges,
  ): Promise<QuotaConfigView & { readonly operationId?: string }> {
    const propagate = changes.apply === 'delta' || changes.apply === 'reset';
    const { maxQuota, resetPeriod, isActive, description } = changes;
    const columns = { maxQuota, resetPeriod, isActive, description };
    const changesColumns = Object.values(columns).some((value) => value !== undefined);

    const updated = await this.db.transaction(
      async (s) => {
        const before = await this.configs.findById(s, id, true);
        if (!before) throw new NotFoundError('Quota config');
        if (!changesColumns && !propagate) return before;
        await this.configs.update(s, id, columns);
        const after = (await this.configs.findById(s, id))!;
        const operationId = propagate
          ? await this.operations.record(s, {
              kind: 'config_propagation',
              selection: { kind: 'membership_type', membershipType: after.membershipType },
              mode: changes.apply === 'delta' ? 'delta' : 'set',
              value: changes.apply === 'delta' ? after.maxQuota - before.maxQuota : after.maxQuota,
              reason: 'config_change',
              note: `config ${id} ${changes.apply}: max_quota ${before.maxQuota} -> ${after.maxQuota}`,
              payload: {
                config_id: id,
                apply: changes.apply,
                max_quota_before: before.maxQuota,
                max_quota: after.maxQuota,
              },
              requestedBy: actorId(actor),
              configId: id,
            })
          : undefined;
        await this.audit.record(s.manager, {
          actor,
          action: 'quota_config.update',
          entityType: 'quota_config',
          entityId: id,
          before: configJson(before),
          after: { ...configJson(after), apply: changes.apply ?? 'next_reset', operation_id: operationId ?? null },
        });
        return operationId === undefined ? after : { ...after, operationId };
      },
      { entityManager: true },
    );
    this.cache.invalidate();
    if ('operationId' in updated && updated.operationId) this.operations.announce(updated.operationId);
    return updated;
  }

  async remove(actor: Actor, id: string): Promise<void> {
    await this.db.transaction(
      async (s) => {
        const before = await this.configs.findById(s, id, true);
        if (!before) throw new NotFoundError('Quota config');
        if (await this.configs.typeInUse(s, before.membershipType)) throw new ConfigInUseError(before.membershipType);
        try {
          await this.configs.delete(s, id);
        } catch (err) {
          // A member was created with this type since the check: the foreign key refuses the delete.
          if (dbErrorKind(err) === 'foreign_key') throw new ConfigInUseError(before.membershipType);
          throw err;
        }
        await this.audit.record(s.manager, {
          actor,
          action: 'quota_config.delete',
          entityType: 'quota_config',
          entityId: id,
          before: configJson(before),
          after: null,
        });
      },
      { entityManager: true },
    );
    this.cache.invalidate();
  }
}
