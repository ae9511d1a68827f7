import { Injectable } from '@nestjs/common';
import type { HttpReply, HttpRequest } from '../common/http';
import { INVALID_TOKEN, MISSING_TOKEN } from './token-errors';
import { JWT_STRATEGY, JwtStrategy, type Claims } from './jwt.strategy';
import type { Principal } from './principal';

const BEARER = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/;
const VERIFIED_TOKENS_MAX = 10_000;

/**
 * Runs the passport-jwt strategy for one request and returns the caller, or throws a 401 AppError.
 *
 * A token whose signature, algorithm, issuer and audience passport-jwt has accepted is remembered
 * (a bounded map, oldest evicted first), so a client's next requests skip the HMAC and JSON work.
 * The expiry is checked again on every use, and the user lookup (active, token version) always
 * runs, so revocation still takes effect on the very next request.
 */
@Injectable()
export class JwtAuthenticator {
  private readonly verified = new Map<string, Claims & { exp: number }>();

  constructor(private readonly strategy: JwtStrategy) {}

  /**
   * `deferUserCheck` (routes marked @ChecksCallerInTransaction): a token already verified and
   * looked up before comes back with its user check pending instead of looked up again.
   */
  async authenticate(req: HttpRequest, res: HttpReply, deferUserCheck = false): Promise<Principal> {
    const header = req.headers.authorization;
    if (header === undefined) throw MISSING_TOKEN();
    const token = BEARER.exec(header)?.[1];
    const known = token === undefined ? undefined : this.verified.get(token);
    if (known) {
      if (known.exp * 1000 <= Date.now()) {
        this.verified.delete(token!);
        throw INVALID_TOKEN();
      }
      const pending = deferUserCheck ? this.strategy.pendingPrincipal(known) : null;
      if (pending) return pending;
      const principal = await this.strategy.validate(known);
      if (!principal) throw INVALID_TOKEN();
      return principal;
    }
    const principal = await this.viaPassport(req, res);
    if (token !== undefined) this.remember(token);
    return principal;
  }

  private remember(token: string): void {
    const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8')) as Claims;
    if (typeof claims.exp !== 'number') return;
    if (this.verified.size >= VERIFIED_TOKENS_MAX) {
      this.verified.delete(this.verified.keys().next().value!);
    }
    this.verified.set(token, claims as Claims & { exp: number });
  }

  private viaPassport(req: HttpRequest, res: HttpReply): Promise<Principal> {
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
      ) as (req: HttpRequest, res: HttpReply, next: (err?: unknown) => void) => void;
      middleware(req, res, (err?: unknown) =>
        reject(err instanceof Error ? err : new Error('authentication did not complete')),
      );
    });
  }
}
