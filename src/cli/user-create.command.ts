import { parseArgs } from 'node:util';
import { plainToInstance } from 'class-transformer';
import { validate, type ValidationError } from 'class-validator';
import { CreateUserDto } from '../auth/dto/user.dto';
import { UsersService } from '../auth/users.service';
import { AppError } from '../common/app-error';
import { UsageError, type CliCommand } from './command';
import { refusalWhileReadOnly } from './maintenance.command';
import { readPassword } from './password-input';

function describe(errors: readonly ValidationError[]): string[] {
  return errors.flatMap((error) => Object.values(error.constraints ?? {}));
}

/** Same rules as POST /api/v1/admin/users; the audit log names the actor "system". */
export const userCreateCommand: CliCommand = {
  name: 'user:create',
  summary: 'create a user (the first admin, typically)',
  usage:
    'user:create --email EMAIL --role admin|operator|service|member [--member-id ID] [--password PASSWORD]\n' +
    '  Without --password the password is read from standard input (first line), or prompted for on a terminal.',

  async run(args, { config, open, stdin, stdout, stderr }) {
    let values: { email?: string; role?: string; password?: string; 'member-id'?: string };
    try {
      ({ values } = parseArgs({
        args: [...args],
        options: {
          email: { type: 'string' },
          role: { type: 'string' },
          password: { type: 'string' },
          'member-id': { type: 'string' },
        },
        strict: true,
        allowPositionals: false,
      }));
    } catch (err) {
      throw new UsageError(err instanceof Error ? err.message : String(err));
    }
    if (values.email === undefined) throw new UsageError('--email is required');
    if (values.role === undefined) throw new UsageError('--role is required');
    const password = values.password ?? (await readPassword(stdin, stderr));

    const dto = plainToInstance(CreateUserDto, {
      email: values.email,
      password,
      role: values.role,
      ...(values['member-id'] === undefined ? {} : { member_id: values['member-id'] }),
    });
    const problems = describe(await validate(dto, { whitelist: true, forbidNonWhitelisted: true }));
    if (problems.length > 0) {
      for (const problem of problems) stderr.write(`error: ${problem}\n`);
      return 1;
    }

    // Same options as the service; migrations run here too where the service would run them.
    const context = await open({ runMigrations: config.migrationsRun });
    try {
      const frozen = await refusalWhileReadOnly(context);
      if (frozen !== null) {
        stderr.write(`error: ${frozen}\n`);
        return 1;
      }
      const users = context.get(UsersService);
      const user = await users.create('system', {
        email: dto.email,
        password: dto.password,
        role: dto.role,
        memberId: dto.member_id ?? null,
      });
      stdout.write(`created ${user.role} user ${String(user.id)} (${user.email})\n`);
      return 0;
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      stderr.write(`error: ${err.detail}\n`);
      for (const field of err.options.errors ?? []) stderr.write(`error: ${field.field}: ${field.message}\n`);
      return 1;
    } finally {
      await context.close();
    }
  },
};
