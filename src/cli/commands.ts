import type { CliCommand } from './command';
import { maintenanceOffCommand, maintenanceOnCommand } from './maintenance.command';
import { quotaVerifyCommand } from './quota-verify.command';
import { userCreateCommand } from './user-create.command';

/** Every CLI command; a new one is one more entry here. */
export const COMMANDS: readonly CliCommand[] = [
  userCreateCommand,
  quotaVerifyCommand,
  maintenanceOnCommand,
  maintenanceOffCommand,
];

export { UsageError, type CliCommand, type CliContext } from './command';
