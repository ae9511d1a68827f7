import { Injectable } from '@nestjs/common';
import { QuotaDatabase } from '../database/database';
import { ConfigsRepository } from './configs.repository';
import type { QuotaConfigView } from './quota.views';

/** Configs change rarely; another instance's change shows up here within this time. */
const FRESH_FOR_MS = 5000;

/**
 * All quota configs, held in memory for the consume path's response headers and metric labels.
 * Decisions never rest on it: whether a config is active is checked by the ledger's own UPDATE.
 * Never call it inside a quota transaction (on SQLite that would wait for itself).
 */
@Injectable()
export class ConfigCache {
  private byId = new Map<string, QuotaConfigView>();
  private byType = new Map<string, QuotaConfigView>();
  private loadedAt = 0;
  private loading: Promise<void> | null = null;

  constructor(
    private readonly db: QuotaDatabase,
    private readonly configs: ConfigsRepository,
  ) {}

  async byIdOrNull(id: string): Promise<QuotaConfigView | null> {
    await this.ensureFresh(!this.byId.has(id));
    return this.byId.get(id) ?? null;
  }

  async byTypeOrNull(membershipType: string): Promise<QuotaConfigView | null> {
    await this.ensureFresh(!this.byType.has(membershipType));
    return this.byType.get(membershipType) ?? null;
  }

  invalidate(): void {
    this.loadedAt = 0;
  }

  private async ensureFresh(missing: boolean): Promise<void> {
    if (!missing && Date.now() - this.loadedAt < FRESH_FOR_MS) return;
    this.loading ??= this.load().finally(() => {
      this.loading = null;
    });
    await this.loading;
  }

  private async load(): Promise<void> {
    const configs = await this.db.read((s) => this.configs.list(s));
    this.byId = new Map(configs.map((c) => [c.id, c]));
    this.byType = new Map(configs.map((c) => [c.membershipType, c]));
    this.loadedAt = Date.now();
  }
}
