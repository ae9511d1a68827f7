import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { AuditLogEntry } from './audit-log.entity';

/** Who made a change, as far as the log records it (auth's Principal is one). */
export interface AuditActor {
  readonly userId: string;
  readonly email: string;
  readonly requestId?: string | null;
}

export interface AuditEntry {
  readonly actor: AuditActor | 'system';
  /** Dotted verb such as `user.create`, `quota_config.update`. */
  readonly action: string;
  readonly entityType: string;
  readonly entityId: string;
  readonly before: Record<string, unknown> | null;
  readonly after: Record<string, unknown> | null;
}

/** Keys that must never reach the log, whatever a caller passes by mistake. */
const SECRET_KEYS = /^(password|password_hash|passwordhash|secret|token|access_token)$/i;

function withoutSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutSecrets);
  if (value instanceof Date) return value.toISOString();
  if (value === null || typeof value !== 'object') return value;
  const clean: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    if (!SECRET_KEYS.test(key)) clean[key] = withoutSecrets(inner);
  }
  return clean;
}

function toJson(snapshot: Record<string, unknown> | null): string | null {
  return snapshot === null ? null : JSON.stringify(withoutSecrets(snapshot));
}

/**
 * Writes the admin audit log. Callers pass the EntityManager of their own transaction, so the
 * log row commits or rolls back together with the change it describes.
 */
@Injectable()
export class AuditService {
  async record(manager: EntityManager, entry: AuditEntry): Promise<void> {
    await manager.insert(AuditLogEntry, toRow(entry, new Date()));
  }

  /** Many entries of one change (a batch onboarding), as multi-row inserts rather than one per entry. */
  async recordMany(manager: EntityManager, entries: readonly AuditEntry[]): Promise<void> {
    const now = new Date();
    for (let start = 0; start < entries.length; start += ROWS_PER_INSERT) {
      await manager.insert(
        AuditLogEntry,
        entries.slice(start, start + ROWS_PER_INSERT).map((entry) => toRow(entry, now)),
      );
    }
  }
}

/** Ten columns a row: 500 rows stay well inside every driver's parameter limit. */
const ROWS_PER_INSERT = 500;

function toRow(entry: AuditEntry, now: Date) {
  const user = entry.actor === 'system' ? null : entry.actor;
  return {
    actorUserId: user?.userId ?? null,
    actorLabel: user?.email ?? 'system',
    action: entry.action,
    entityType: entry.entityType,
    entityId: entry.entityId,
    beforeJson: toJson(entry.before),
    afterJson: toJson(entry.after),
    requestId: user?.requestId ?? null,
    createdAt: now,
  };
}
