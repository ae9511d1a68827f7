import { Injectable } from '@nestjs/common';
import { AuditService } from '../audit/audit.service';
import { actorId, type Actor } from './actor';
import { NotFoundError } from '../common/app-error';
import { ConfigCache } from './config-cache';
import { OperationRecorder } from './ledger-bulk.service';
import type { ConfigApplyMode } from './dto/config.dto';
import type { ResetPeriod } from './entities/quota-config.entity';
import { QuotaDatabase } from '../database/database';
import { dbErrorKind, sqlTimestamp, type SqlSession } from '../database/sql-session';
import { ConfigInUseError, DuplicateMembershipTypeError } from './quota.errors';
import { CONFIG_COLUMNS, configJson, toConfig, type ConfigRow, type QuotaConfigView } from './quota.views';

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
    private readonly audit: AuditService,
    private readonly cache: ConfigCache,
    private readonly operations: OperationRecorder,
  ) {}

  async list(filter: { isActive?: boolean }): Promise<QuotaConfigView[]> {
    const where = filter.isActive === undefined ? '' : ' WHERE is_active = ?';
    const rows = await this.db.read((s) =>
      s.rows<ConfigRow>(
        `SELECT ${CONFIG_COLUMNS} FROM member_quota_config${where} ORDER BY id`,
        filter.isActive === undefined ? [] : [filter.isActive ? 1 : 0],
      ),
    );
    return rows.map(toConfig);
  }

  async get(id: string): Promise<QuotaConfigView> {
    const config = await this.db.read((s) => this.find(s, id));
    if (!config) throw new NotFoundError('Quota config');
    return config;
  }

  async create(actor: Actor, input: NewConfig): Promise<QuotaConfigView> {
    const created = await this.db.transaction(
      async (s) => {
        const now = sqlTimestamp(new Date());
        let id: string | null;
        try {
          id = (
            await s.exec(
              `INSERT INTO member_quota_config (membership_type, max_quota, reset_period, is_active, description, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)`,
              [
                input.membershipType,
                input.maxQuota,
                input.resetPeriod ?? 'none',
                input.isActive === false ? 0 : 1,
                input.description ?? null,
                now,
                now,
              ],
            )
          ).insertId;
        } catch (err) {
          if (dbErrorKind(err) === 'duplicate') throw new DuplicateMembershipTypeError(input.membershipType);
          throw err;
        }
        const config = await this.find(s, id!);
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
    const sets: string[] = [];
    const params: unknown[] = [];
    const set = (column: string, value: unknown) => {
      sets.push(`${column} = ?`);
      params.push(value);
    };
    if (changes.maxQuota !== undefined) set('max_quota', changes.maxQuota);
    if (changes.resetPeriod !== undefined) set('reset_period', changes.resetPeriod);
    if (changes.isActive !== undefined) set('is_active', changes.isActive ? 1 : 0);
    if (changes.description !== undefined) set('description', changes.description);

    const updated = await this.db.transaction(
      async (s) => {
        const before = await this.find(s, id, true);
        if (!before) throw new NotFoundError('Quota config');
        if (sets.length === 0 && !propagate) return before;
        if (sets.length > 0) {
          set('updated_at', sqlTimestamp(new Date()));
          await s.exec(`UPDATE member_quota_config SET ${sets.join(', ')} WHERE id = ?`, [...params, id]);
        }
        const after = (await this.find(s, id))!;
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
        const before = await this.find(s, id, true);
        if (!before) throw new NotFoundError('Quota config');
        const inUse = await s.rows('SELECT 1 AS used FROM members WHERE membership_type = ? LIMIT 1', [
          before.membershipType,
        ]);
        if (inUse.length > 0) throw new ConfigInUseError(before.membershipType);
        try {
          await s.exec('DELETE FROM member_quota_config WHERE id = ?', [id]);
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

  private async find(s: SqlSession, id: string, lock = false): Promise<QuotaConfigView | null> {
    const rows = await s.rows<ConfigRow>(
      `SELECT ${CONFIG_COLUMNS} FROM member_quota_config WHERE id = ?${lock ? s.sql.forUpdate : ''}`,
      [id],
    );
    return rows.length === 0 ? null : toConfig(rows[0]);
  }
}
