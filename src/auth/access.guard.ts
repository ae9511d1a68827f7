import { Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { HttpReply, HttpRequest } from '../common/http';
import { AppError } from '../common/app-error';
import { ALLOWED_WHILE_READ_ONLY_KEY, isWriteMethod } from '../maintenance/read-only';
import { WriteFreeze } from '../maintenance/write-freeze';
import { AppThrottlerGuard } from '../throttle/app-throttler.guard';
import { CHECKS_CALLER_IN_TRANSACTION_KEY, IS_PUBLIC_KEY, ROLES_KEY } from './decorators';
import { JwtAuthenticator } from './jwt-authenticator';
import type { Principal, Role } from './principal';

type AuthRequest = HttpRequest & { user?: Principal };

/**
 * The one global guard, so the order is fixed: authenticate, rate-limit (per user once known, per
 * address otherwise, so bad tokens are limited too), authorise, then refuse writes during a write
 * freeze (so 401 and 403 come first, and validation after). Deny by default: a route without
 * @Public or @Roles is refused to everyone.
 */
@Injectable()
export class AccessGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly authenticator: JwtAuthenticator,
    private readonly throttler: AppThrottlerGuard,
    private readonly freeze: WriteFreeze,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    const isPublic = this.reflector.getAllAndOverride<boolean | undefined>(IS_PUBLIC_KEY, targets) === true;
    const http = context.switchToHttp();
    const req = http.getRequest<AuthRequest>();

    let authFailure: AppError | undefined;
    if (!isPublic) {
      try {
        const defer = this.reflector.getAllAndOverride<boolean | undefined>(CHECKS_CALLER_IN_TRANSACTION_KEY, targets);
        const principal = await this.authenticator.authenticate(req, http.getResponse<HttpReply>(), defer === true);
        req.user = { ...principal, requestId: req.id };
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        authFailure = err;
      }
    }

    await this.throttler.canActivate(context);

    if (isPublic) {
      this.refuseWritesWhileFrozen(req, targets);
      return true;
    }
    if (authFailure || !req.user) throw authFailure ?? new AppError('unauthorized', 'Authentication is required.');
    const roles = this.reflector.getAllAndOverride<Role[] | undefined>(ROLES_KEY, targets);
    if (!roles || roles.length === 0) {
      throw new AppError('forbidden', 'This endpoint is not open to any role.');
    }
    if (!roles.includes(req.user.role)) {
      // A token that no longer holds at all is told so, as it would be without the deferred check.
      const pending = req.user.pendingCheck;
      if (pending) await pending.settle();
      throw new AppError('forbidden', 'Your role is not allowed to use this endpoint.');
    }
    this.refuseWritesWhileFrozen(req, targets);
    return true;
  }

  /** An in-memory check (WriteFreeze polls the switch): the write path gets no extra round trip. */
  private refuseWritesWhileFrozen(req: AuthRequest, targets: Parameters<Reflector['getAllAndOverride']>[1]): void {
    if (!this.freeze.isReadOnly() || !isWriteMethod(req.method)) return;
    if (this.reflector.getAllAndOverride<boolean | undefined>(ALLOWED_WHILE_READ_ONLY_KEY, targets) === true) return;
    this.freeze.assertWritable();
  }
}
