import { Injectable } from '@nestjs/common';
import { AuditService, type AuditActor } from '../audit/audit.service';
import type { SqlSession } from '../database/sql-session';
import { MaintenanceRepository, type MaintenanceState } from './maintenance.repository';

export interface MaintenanceChange {
  readonly readOnly: boolean;
  readonly reason?: string | null;
}

/** A user through the API, or the CLI (the audit log says "system", the switch "system (cli)"). */
export type MaintenanceActor = AuditActor | 'cli';

/** What GET and PUT /admin/maintenance answer. */
export function maintenanceView(state: MaintenanceState) {
  return {
    read_only: state.readOnly,
    reason: state.reason,
    since: state.since?.toISOString() ?? null,
    by: state.changedBy,
  };
}

/**
 * Reads and changes the switch inside a caller's transaction, so the API (WriteFreeze.change) and
 * the CLI, which runs with no API instance, write it the same way, audit entry included.
 */
@Injectable()
export class MaintenanceService {
  constructor(
    private readonly repository: MaintenanceRepository,
    private readonly audit: AuditService,
  ) {}

  read(s: SqlSession): Promise<MaintenanceState> {
    return this.repository.read(s);
  }

  /** Needs a session with an EntityManager (the audit log writes through it). */
  async change(
    s: SqlSession,
    actor: MaintenanceActor,
    change: MaintenanceChange,
    now = new Date(),
  ): Promise<MaintenanceState> {
    const before = await this.repository.read(s, true);
    const stays = before.readOnly === change.readOnly;
    const after: MaintenanceState = {
      readOnly: change.readOnly,
      // Freezing again without a reason keeps the one given; lifting the freeze clears it.
      reason: change.readOnly ? (change.reason ?? (stays ? before.reason : null)) : null,
      since: stays && before.since !== null ? before.since : now,
      changedBy: actor === 'cli' ? 'system (cli)' : actor.email,
    };
    await this.repository.write(s, after, now);
    await this.audit.record(s.manager, {
      actor: actor === 'cli' ? 'system' : actor,
      action: change.readOnly ? 'maintenance.read_only_on' : 'maintenance.read_only_off',
      entityType: 'maintenance',
      entityId: '1',
      before: maintenanceView(before),
      after: maintenanceView(after),
    });
    return after;
  }
}
