import { parseArgs } from 'node:util';
import { DataSource } from 'typeorm';
import { checkLedger, type IntegrityReport } from '../quota/integrity';
import { UsageError, type CliCommand } from './command';

/** The ledger check of GET /admin/quota/integrity, for a DataSource that is already initialised. */
export function runQuotaVerify(dataSource: DataSource, memberId?: string): Promise<IntegrityReport> {
  return checkLedger((sql, params) => dataSource.query<Record<string, unknown>[]>(sql, params), memberId);
}

export function formatQuotaVerify(report: IntegrityReport): string {
  const lines = report.mismatches.map(
    (m) => `MISMATCH member ${m.member_id}: balance ${m.balance}, ledger sum ${m.ledger_sum}`,
  );
  lines.push(
    ...report.held_mismatches.map((m) => `MISMATCH member ${m.member_id}: held ${m.held}, open holds ${m.open_holds}`),
  );
  lines.push(
    report.mismatches.length === 0
      ? `ok: ${report.checked} member(s) checked, every balance equals the sum of its history`
      : `FAILED: ${report.mismatches.length} of ${report.checked} member(s) differ from their history`,
  );
  if (report.held_mismatches.length > 0) {
    lines.push(`FAILED: ${report.held_mismatches.length} member(s) hold other than their open holds`);
  }
  return `${lines.join('\n')}\n`;
}

/** Exit status 0 when the ledger is clean, 1 when any member's balance differs from its history. */
export const quotaVerifyCommand: CliCommand = {
  name: 'quota:verify',
  summary: 'check that every balance equals the sum of its history deltas',
  usage: 'quota:verify [--member-id ID]',

  async run(args, { open, stdout }) {
    let values: { 'member-id'?: string };
    try {
      ({ values } = parseArgs({
        args: [...args],
        options: { 'member-id': { type: 'string' } },
        strict: true,
        allowPositionals: false,
      }));
    } catch (err) {
      throw new UsageError(err instanceof Error ? err.message : String(err));
    }
    const memberId = values['member-id'];
    if (memberId !== undefined && !/^[1-9]\d{0,18}$/.test(memberId)) {
      throw new UsageError('--member-id must be a member id (digits)');
    }
    const context = await open({ runMigrations: false });
    try {
      const report = await runQuotaVerify(context.get(DataSource), memberId);
      stdout.write(formatQuotaVerify(report));
      return report.mismatches.length === 0 && report.held_mismatches.length === 0 ? 0 : 1;
    } finally {
      await context.close();
    }
  },
};
