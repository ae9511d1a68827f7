import { Inject, Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { Logger } from 'pino';
import type { Repository } from 'typeorm';
import { AppError } from '../common/app-error';
import { ROOT_LOGGER } from '../common/logger.token';
import { write } from '../database/writer';
import { AppConfig } from '../config/app-config';
import { AuthMetrics, type FailedLoginReason } from './auth.metrics';
import { PasswordHasher } from './password-hasher';
import { TokenService } from './token.service';
import { User } from './user.entity';
import { normalizeEmail, userView, type UserView } from './user.view';

export interface LoginResult {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  user: UserView;
}

/** One answer for an unknown email, a wrong password and a disabled account. */
const invalidCredentials = () => new AppError('invalid_credentials', 'The email or password is incorrect.');

/** Optimistic retries when several failed logins for one account race each other. */
const FAILURE_UPDATE_ATTEMPTS = 5;

@Injectable()
export class AuthService {
  constructor(
    @InjectRepository(User) private readonly users: Repository<User>,
    private readonly hasher: PasswordHasher,
    private readonly tokens: TokenService,
    private readonly metrics: AuthMetrics,
    private readonly config: AppConfig,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
  ) {}

  /**
   * Unknown emails are checked against a dummy hash so they take as long as a wrong password.
   * Failures are counted on the account in the database; at LOGIN_MAX_FAILURES within
   * LOGIN_FAILURE_WINDOW the account is locked for LOGIN_LOCK_DURATION, whatever the IP and
   * whatever the password.
   */
  async login(email: string, password: string, ip: string): Promise<LoginResult> {
    const user = await this.users
      .createQueryBuilder('user')
      .addSelect('user.passwordHash')
      .where('user.email = :email', { email: normalizeEmail(email) })
      .getOne();
    if (!user) {
      await this.hasher.verifyAgainstDummy(password);
      this.failed('unknown_email', ip, null);
      throw invalidCredentials();
    }
    const now = Date.now();
    if (user.lockedUntil && user.lockedUntil.getTime() > now) {
      this.failed('locked', ip, user.id);
      throw this.lockedError(user.lockedUntil.getTime() - now);
    }
    if (!(await this.hasher.verify(user.passwordHash, password))) {
      const lockedUntil = await this.recordFailure(user);
      this.failed('wrong_password', ip, user.id);
      if (lockedUntil) {
        this.metrics.lockouts.inc();
        this.logger.warn(
          { event: 'account_locked', user_id: String(user.id), ip, locked_until: lockedUntil.toISOString() },
          'account locked after repeated failed logins',
        );
      }
      throw invalidCredentials();
    }
    if (!user.isActive) {
      this.failed('inactive', ip, user.id);
      throw invalidCredentials();
    }
    const loggedInAt = new Date();
    await write(this.users.manager.connection, () =>
      this.users.update(
        { id: user.id },
        { failedLoginCount: 0, failedLoginWindowStartedAt: null, lockedUntil: null, lastLoginAt: loggedInAt },
      ),
    );
    const token = await this.tokens.issue(user);
    this.logger.info({ event: 'login', user_id: String(user.id), ip }, 'login succeeded');
    return {
      access_token: token.accessToken,
      token_type: 'Bearer',
      expires_in: token.expiresIn,
      user: userView(user),
    };
  }

  private lockedError(remainingMs: number): AppError {
    const retryAfterSeconds = Math.max(1, Math.ceil(remainingMs / 1000));
    return new AppError(
      'account_locked',
      `Too many failed logins: this account is locked; retry after ${retryAfterSeconds} seconds.`,
      { retryAfterSeconds },
    );
  }

  /** The password is never logged; the email only as the matching user id. */
  private failed(reason: FailedLoginReason, ip: string, userId: string | null): void {
    this.metrics.failedLogins.inc({ reason });
    this.logger.warn(
      { event: 'login_failed', reason, ip, ...(userId === null ? {} : { user_id: String(userId) }) },
      'login failed',
    );
  }

  /**
   * Counts one failure, compare-and-set on the current count so concurrent failures from many
   * clients are all counted. Returns the lock expiry when this failure locked the account.
   */
  private async recordFailure(seen: User): Promise<Date | null> {
    const { maxFailures, failureWindowSeconds, lockSeconds } = this.config.login;
    let current: Pick<User, 'id' | 'failedLoginCount' | 'failedLoginWindowStartedAt' | 'lockedUntil'> | null = seen;
    for (let attempt = 0; attempt < FAILURE_UPDATE_ATTEMPTS && current; attempt++) {
      const now = Date.now();
      if (current.lockedUntil && current.lockedUntil.getTime() > now) return null;
      const windowStart = current.failedLoginWindowStartedAt;
      const inWindow = windowStart !== null && now - windowStart.getTime() < failureWindowSeconds * 1000;
      const count = inWindow ? current.failedLoginCount + 1 : 1;
      const lockedUntil = count >= maxFailures ? new Date(now + lockSeconds * 1000) : null;
      const id = current.id;
      const failedLoginCount = current.failedLoginCount;
      const result = await write(this.users.manager.connection, () =>
        this.users.update(
          { id, failedLoginCount },
          lockedUntil
            ? { failedLoginCount: 0, failedLoginWindowStartedAt: null, lockedUntil }
            : { failedLoginCount: count, failedLoginWindowStartedAt: inWindow ? windowStart : new Date(now) },
        ),
      );
      if (result.affected === 1) return lockedUntil;
      current = await this.users.findOne({
        select: { id: true, failedLoginCount: true, failedLoginWindowStartedAt: true, lockedUntil: true },
        where: { id: current.id },
      });
    }
    return null;
  }
}
