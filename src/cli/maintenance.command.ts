import type { INestApplicationContext } from '@nestjs/common';
import { parseArgs } from 'node:util';
import { DataSource } from 'typeorm';
import { queryRunnerSession } from '../database/database';
import { writeTransaction } from '../database/writer';
import { MAINTENANCE_REASON_MAX_LENGTH } from '../maintenance/maintenance.dto';
import type { MaintenanceState } from '../maintenance/maintenance.repository';
import { MaintenanceService } from '../maintenance/maintenance.service';
import { UsageError, type CliCommand, type CliContext } from './command';

function describe(state: MaintenanceState): string {
  const since = state.since?.toISOString() ?? 'never changed';
  return state.readOnly
    ? `read-only since ${since} (reason: ${state.reason ?? 'none given'}); every instance refuses writes within 2 s\n`
    : `writable since ${since}; every instance accepts writes again within 2 s\n`;
}

/**
 * Straight to the database, so it works while no API instance runs (and while every instance is
 * stopped for a restore); the audit log names the actor "system", the switch "system (cli)".
 */
async function change(context: CliContext, readOnly: boolean, reason: string | undefined): Promise<number> {
  // Migrations as the service would run them: an instance started later must find the switch set.
  const app = await context.open({ runMigrations: context.config.migrationsRun });
  try {
    const service = app.get(MaintenanceService);
    const state = await writeTransaction(app.get(DataSource), (manager) =>
      service.change(queryRunnerSession(manager.queryRunner!), 'cli', { readOnly, reason }),
    );
    context.stdout.write(describe(state));
    return 0;
  } finally {
    await app.close();
  }
}

export const maintenanceOnCommand: CliCommand = {
  name: 'maintenance:on',
  summary: 'freeze every write on every instance (maintenance mode); works with no instance running',
  usage: 'maintenance:on [--reason TEXT]',

  async run(args, context) {
    let values: { reason?: string };
    try {
      ({ values } = parseArgs({
        args: [...args],
        options: { reason: { type: 'string' } },
        strict: true,
        allowPositionals: false,
      }));
    } catch (err) {
      throw new UsageError(err instanceof Error ? err.message : String(err));
    }
    if (values.reason !== undefined && values.reason.length > MAINTENANCE_REASON_MAX_LENGTH) {
      throw new UsageError(`--reason must be at most ${MAINTENANCE_REASON_MAX_LENGTH} characters`);
    }
    return change(context, true, values.reason);
  },
};

export const maintenanceOffCommand: CliCommand = {
  name: 'maintenance:off',
  summary: 'lift the write freeze: every instance accepts writes again within 2 s',
  usage: 'maintenance:off',

  async run(args, context) {
    if (args.length > 0) throw new UsageError(`unexpected argument ${args[0]}`);
    return change(context, false, undefined);
  },
};

/**
 * For the CLI commands that change data: a message (and exit status 1) while the write freeze is
 * on, nothing otherwise. A database without the switch's table (migrations not yet run) is not frozen.
 */
export async function refusalWhileReadOnly(app: INestApplicationContext): Promise<string | null> {
  const dataSource = app.get(DataSource);
  const state = await writeTransaction(dataSource, async (manager) => {
    const tables = await manager.queryRunner!.hasTable('quota_maintenance');
    return tables ? app.get(MaintenanceService).read(queryRunnerSession(manager.queryRunner!)) : null;
  });
  if (!state?.readOnly) return null;
  return (
    `the service is in maintenance (write freeze) since ${state.since?.toISOString() ?? '?'}` +
    `${state.reason ? ` (reason: ${state.reason})` : ''}: nothing was changed; ` +
    'run `npm run cli -- maintenance:off` first if the freeze is over'
  );
}
