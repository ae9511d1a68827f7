import { KeysetCursor } from '../common/keyset-cursor';
import { Injectable } from '@nestjs/common';
import type { HistoryReason } from './entities/quota-history.entity';
import { NotFoundError, ValidationFailedError } from '../common/app-error';
import type { IntegrityReport } from './integrity';
import { QuotaDatabase } from '../database/database';
import { HistoryRepository } from './history.repository';
import type { HistoryRow } from './quota.views';

export interface HistoryFilter {
  readonly memberId?: string;
  readonly reason?: HistoryReason;
  readonly from?: Date;
  readonly to?: Date;
  readonly limit: number;
  readonly cursor?: string;
}

export interface HistoryPage {
  readonly rows: HistoryRow[];
  readonly nextCursor: string | null;
}

const CURSOR = new KeysetCursor('h');

/** Reads of the ledger: newest first, keyset-paginated on the id, and the integrity check. */
@Injectable()
export class HistoryService {
  constructor(
    private readonly db: QuotaDatabase,
    private readonly history: HistoryRepository,
  ) {}

  async list(filter: HistoryFilter): Promise<HistoryPage> {
    if (filter.from && filter.to && filter.from > filter.to) {
      throw new ValidationFailedError([{ field: 'from', message: 'from must not be after to' }]);
    }
    const query = {
      memberId: filter.memberId,
      reason: filter.reason,
      from: filter.from,
      to: filter.to,
      beforeId: filter.cursor === undefined ? undefined : CURSOR.decode(filter.cursor),
    };
    // One row more than asked says whether another page follows.
    const rows = await this.db.read((s) => this.history.newestFirst(s, query, filter.limit + 1));
    const page = rows.slice(0, filter.limit);
    const nextCursor = rows.length > filter.limit ? CURSOR.encode(String(page[page.length - 1].id)) : null;
    return { rows: page, nextCursor };
  }

  async integrity(memberId?: string): Promise<IntegrityReport> {
    const report = await this.db.read((s) => this.history.ledgerMismatches(s, memberId));
    if (memberId !== undefined && report.checked === 0) throw new NotFoundError('Member');
    return report;
  }
}
