import { Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import { createSecretKey } from 'node:crypto';
import passport from 'passport';
import { ExtractJwt, Strategy } from 'passport-jwt';
import { DataSource } from 'typeorm';
import { AppConfig } from '../config/app-config';
import { FreshReads } from '../common/fresh-reads';
import { directQuery } from '../database/direct-query';
import { INVALID_TOKEN } from './token-errors';
import type { PendingCallerCheck, Principal, Role } from './principal';
import { JWT_ALGORITHM, JWT_AUDIENCE, JWT_ISSUER } from './token.service';

export const JWT_STRATEGY = 'jwt';

/**
 * Each application gets its own passport instance: the global one is a process singleton, and a
 * second app in the same process (tests, two instances on one database) would replace this app's
 * strategy and its database connection.
 */
const passportInstances = new WeakMap<object, passport.Authenticator>();

const USER_ID = /^[1-9]\d{0,18}$/;
const KNOWN_ACCESS_MAX = 10_000;

export interface Claims {
  sub?: unknown;
  ver?: unknown;
  exp?: unknown;
}

interface UserAccessRow {
  email: string;
  role: Role;
  member_id: string | number | null;
  is_active: number | boolean | string;
  token_version: number | string;
}

@Injectable()
export class JwtStrategy extends PassportStrategy(Strategy, JWT_STRATEGY) {
  /** `userId:tokenVersion` → the caller it stood for at its last successful lookup. */
  private readonly knownAccess = new Map<string, Principal>();
  /**
   * The user row, read once for every request of that user waiting at the time. Each request
   * still gets a read that started after it arrived, so a user disabled (or a token revoked)
   * before a request came in is always seen by that request.
   */
  private readonly userRows: FreshReads<string, UserAccessRow | undefined>;

  constructor(config: AppConfig, dataSource: DataSource) {
    super({
      jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken(),
      // A KeyObject: given a string or Buffer, jsonwebtoken re-derives the key (after a failed
      // public-key parse) on every verification. passport-jwt hands it to jsonwebtoken as is; its
      // typings only predate KeyObject.
      secretOrKey: createSecretKey(Buffer.from(config.jwt.secret, 'utf8')) as unknown as Buffer,
      algorithms: [JWT_ALGORITHM],
      issuer: JWT_ISSUER,
      audience: JWT_AUDIENCE,
      ignoreExpiration: false,
    });
    this.userRows = new FreshReads(async (userId) => {
      const [row] = await directQuery<UserAccessRow>(
        dataSource,
        'SELECT email, role, member_id, is_active, token_version FROM users WHERE id = ?',
        [userId],
      );
      return row;
    });
  }

  /** Called by the PassportStrategy mixin to register this strategy; see passportInstances. */
  getPassportInstance(): passport.Authenticator {
    let instance = passportInstances.get(this);
    if (!instance) {
      instance = new passport.Passport();
      passportInstances.set(this, instance);
    }
    return instance;
  }

  /**
   * Signature, algorithm, issuer, audience and expiry are checked by jsonwebtoken before this
   * runs; it also accepts a token without `exp`, so that is refused here. Then one primary-key
   * lookup: the user must still be active and the token's version current.
   */
  async validate(claims: Claims): Promise<Principal | false> {
    if (typeof claims.exp !== 'number' || typeof claims.sub !== 'string' || !USER_ID.test(claims.sub)) return false;
    if (typeof claims.ver !== 'number' || !Number.isInteger(claims.ver)) return false;
    return this.lookUp(claims.sub, claims.ver);
  }

  /**
   * The caller a token stood for at its last successful lookup, with the lookup itself left
   * pending (see PendingCallerCheck); null for a token not looked up yet. Role, member and email
   * cannot change under one token version (changing role or member revokes tokens), so only
   * "still active, version still current" remains to check.
   */
  pendingPrincipal(claims: Claims): Principal | null {
    if (typeof claims.sub !== 'string' || typeof claims.ver !== 'number') return null;
    const known = this.knownAccess.get(`${claims.sub}:${claims.ver}`);
    if (!known) return null;
    const check: PendingCallerCheck = {
      userId: claims.sub,
      tokenVersion: claims.ver,
      confirmed: false,
      settle: async () => {
        if (check.confirmed) return;
        if ((await this.lookUp(check.userId, check.tokenVersion)) === false) throw INVALID_TOKEN();
        check.confirmed = true;
      },
    };
    return { ...known, pendingCheck: check };
  }

  private async lookUp(userId: string, tokenVersion: number): Promise<Principal | false> {
    const key = `${userId}:${tokenVersion}`;
    const user = await this.userRows.get(userId);
    const active = user?.is_active === true || user?.is_active === 1 || user?.is_active === '1';
    if (!user || !active || Number(user.token_version) !== tokenVersion) {
      this.knownAccess.delete(key);
      return false;
    }
    const principal: Principal = {
      userId,
      email: user.email,
      role: user.role,
      memberId: user.member_id === null ? null : String(user.member_id),
    };
    if (!this.knownAccess.has(key)) {
      if (this.knownAccess.size >= KNOWN_ACCESS_MAX) this.knownAccess.delete(this.knownAccess.keys().next().value!);
      this.knownAccess.set(key, principal);
    }
    return principal;
  }
}
