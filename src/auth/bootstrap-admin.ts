import { Inject, Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import type { Logger } from 'pino';
import { ROOT_LOGGER } from '../common/logger.token';
import { AppConfig } from '../config/app-config';
import { WriteFreeze } from '../maintenance/write-freeze';
import { UsersService } from './users.service';

/** How to get the first admin, for the start-up log of an install that has none. */
export const NO_ADMIN_HINT =
  'No admin user exists yet, so nobody can log in. Create one with ' +
  '`npm run cli -- user:create --email you@example.com --role admin` (it asks for the password), ' +
  'or set ADMIN_EMAIL and ADMIN_PASSWORD and restart; then POST /api/v1/auth/login.';

/**
 * ADMIN_EMAIL + ADMIN_PASSWORD: the first admin of an automated install, created once. Without
 * them, the process says once it listens how to create the first admin while none exists: a new
 * user's first question after `npm start` is how to log in.
 */
@Injectable()
export class BootstrapAdmin implements OnApplicationBootstrap {
  constructor(
    private readonly config: AppConfig,
    private readonly users: UsersService,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
    private readonly freeze: WriteFreeze,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const admin = this.config.bootstrapAdmin;
    if (!admin) return;
    if (this.freeze.isReadOnly()) {
      this.logger.warn('write freeze: ADMIN_EMAIL / ADMIN_PASSWORD not applied; restart after it ends');
      return;
    }
    try {
      const outcome = await this.users.ensureBootstrapAdmin(admin.email, admin.password);
      switch (outcome) {
        case 'created':
          this.logger.info('bootstrap admin created from ADMIN_EMAIL');
          break;
        case 'admin_exists':
          this.logger.info('an admin already exists: ADMIN_EMAIL / ADMIN_PASSWORD ignored');
          break;
        case 'email_taken':
          this.logger.warn('ADMIN_EMAIL belongs to an existing non-admin user: no bootstrap admin created');
          break;
      }
    } catch (err) {
      // Not fatal: the service can still run, and an admin can be created with the CLI.
      this.logger.error({ err }, 'could not create the bootstrap admin (are migrations applied?)');
    }
  }

  /** Logs how to create the first admin when there is none (processes that serve the API only). */
  async hintWhenNoAdmin(): Promise<void> {
    if (this.config.role === 'worker') return;
    try {
      if (!(await this.users.hasActiveAdmin())) this.logger.warn(NO_ADMIN_HINT);
    } catch (err) {
      // Before migrations ran (production applies them as a step of its own) there is no table yet.
      this.logger.debug({ err }, 'could not check for an admin user');
    }
  }
}
