import type { DatabaseConfig } from '../config/app-config';
import { describeTls } from '../config/tls';

/** The database of the start-up line: which driver, where, and with which transport. */
export function describeDatabase(database: DatabaseConfig): string {
  return database.kind === 'sqlite'
    ? `embedded SQLite at ${database.path}`
    : `MySQL ${database.host}:${database.port}/${database.database} (${describeTls(database.tls)})`;
}
