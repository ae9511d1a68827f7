import { createParamDecorator, SetMetadata, type ExecutionContext } from '@nestjs/common';
import type { Principal, Role } from './principal';

export const IS_PUBLIC_KEY = 'auth:public';
export const ROLES_KEY = 'auth:roles';

/** Reachable without a token (login, health probes). Every other route needs @Roles. */
export const Public = () => SetMetadata(IS_PUBLIC_KEY, true);

/** The roles allowed on a route or controller; a route with neither @Roles nor @Public is refused. */
export const Roles = (...roles: Role[]) => SetMetadata(ROLES_KEY, roles);

export const CHECKS_CALLER_IN_TRANSACTION_KEY = 'auth:checks-caller-in-transaction';

/**
 * For hot write routes: a token already seen is not looked up before the route runs; the route
 * checks it in its own transaction instead (see PendingCallerCheck), saving a round trip.
 */
export const ChecksCallerInTransaction = () => SetMetadata(CHECKS_CALLER_IN_TRANSACTION_KEY, true);

/** The authenticated caller, as set on the request by the JWT strategy. */
export const CurrentPrincipal = createParamDecorator((_data: unknown, ctx: ExecutionContext): Principal => {
  const request = ctx.switchToHttp().getRequest<{ user?: Principal }>();
  if (!request.user) throw new Error('CurrentPrincipal used on a route without authentication');
  return request.user;
});
