import { Injectable } from '@nestjs/common';
import type { Request, Response } from 'express';
import { AppError } from '../common/app-error';
import { JWT_STRATEGY, JwtStrategy } from './jwt.strategy';
import type { Principal } from './principal';

export const MISSING_TOKEN = () =>
  new AppError('unauthorized', 'Authentication is required: send an Authorization: Bearer <token> header.');
/** One answer for every bad token: the client learns nothing about why. */
export const INVALID_TOKEN = () => new AppError('invalid_token', 'The bearer token is invalid, expired or revoked.');

/** Runs the passport-jwt strategy for one request and returns the caller, or throws a 401 AppError. */
@Injectable()
export class JwtAuthenticator {
  constructor(private readonly strategy: JwtStrategy) {}

  authenticate(req: Request, res: Response): Promise<Principal> {
    if (req.headers.authorization === undefined) return Promise.reject(MISSING_TOKEN());
    const passport = this.strategy.getPassportInstance();
    return new Promise<Principal>((resolve, reject) => {
      const middleware = passport.authenticate(
        JWT_STRATEGY,
        { session: false },
        (err: unknown, user: Principal | false | undefined) => {
          // An error (database down) is not the caller's fault: it propagates as such, not as a 401.
          if (err) reject(err instanceof Error ? err : new Error('authentication failed unexpectedly'));
          else if (!user) reject(INVALID_TOKEN());
          else resolve(user);
        },
      ) as (req: Request, res: Response, next: (err?: unknown) => void) => void;
      middleware(req, res, (err?: unknown) =>
        reject(err instanceof Error ? err : new Error('authentication did not complete')),
      );
    });
  }
}
