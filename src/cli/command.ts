import type { INestApplicationContext } from '@nestjs/common';
import type { AppConfig } from '../config/app-config';
import type { CliModuleOptions } from './cli.module';

/** What a command gets: the validated config, its streams, and a way to reach the database. */
export interface CliContext {
  readonly config: AppConfig;
  /** Builds the command's services through Nest (see CliModule); the caller closes the context. */
  readonly open: (options: CliModuleOptions) => Promise<INestApplicationContext>;
  readonly stdin: NodeJS.ReadStream;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

export interface CliCommand {
  readonly name: string;
  readonly summary: string;
  readonly usage: string;
  /** Resolves to the process exit code. */
  run(args: readonly string[], context: CliContext): Promise<number>;
}

/** Wrong arguments: main prints the command's usage and exits with status 2. */
export class UsageError extends Error {}
