import { Inject, Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import type { Logger } from 'pino';
import { ROOT_LOGGER } from '../common/logger.token';
import { AppConfig } from '../config/app-config';
import { UsersService } from './users.service';

/** ADMIN_EMAIL + ADMIN_PASSWORD: the first admin of an automated install, created once. */
@Injectable()
export class BootstrapAdmin implements OnApplicationBootstrap {
  constructor(
    private readonly config: AppConfig,
    private readonly users: UsersService,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const admin = this.config.bootstrapAdmin;
    if (!admin) return;
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
}
