import { applyDecorators, SetMetadata } from '@nestjs/common';
import { SkipThrottle } from '@nestjs/throttler';

export const DEFAULT_THROTTLER = 'default';
export const LOGIN_THROTTLER = 'login';
export const LOGIN_RATE_LIMIT_KEY = 'throttle:login';

/** Adds the stricter per-IP THROTTLE_LOGIN_LIMIT on top of the global limit. */
export const LoginRateLimit = () => SetMetadata(LOGIN_RATE_LIMIT_KEY, true);

/** Never rate limited (health probes). */
export const NoRateLimit = () => applyDecorators(SkipThrottle({ [DEFAULT_THROTTLER]: true, [LOGIN_THROTTLER]: true }));
