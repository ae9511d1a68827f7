import 'reflect-metadata';
import { ConfigError } from '../config/app-config';
import { loadConfigFromProcess } from '../config/config.module';
import { createCliContext } from './cli.module';
import { COMMANDS, UsageError, type CliCommand } from './commands';

function usage(): string {
  const lines = COMMANDS.map((command) => `  ${command.name.padEnd(16)} ${command.summary}`);
  return `usage: npm run cli -- <command> [options]\n\ncommands:\n${lines.join('\n')}\n  help             this text\n`;
}

async function run(argv: readonly string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined) {
    process.stderr.write(usage());
    return 2;
  }
  if (name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(usage());
    return 0;
  }
  const command: CliCommand | undefined = COMMANDS.find((candidate) => candidate.name === name);
  if (!command) {
    process.stderr.write(`unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  let config;
  try {
    config = loadConfigFromProcess();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`Invalid configuration: ${err.message}\n`);
    return 1;
  }
  try {
    return await command.run(args, {
      config,
      open: (options) => createCliContext(config, options),
      stdin: process.stdin,
      stdout: process.stdout,
      stderr: process.stderr,
    });
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`error: ${err.message}\nusage: npm run cli -- ${command.usage}\n`);
    return 2;
  }
}

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
