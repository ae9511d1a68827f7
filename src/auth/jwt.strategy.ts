import { Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import { createSecretKey } from 'node:crypto';
import passport from 'passport';
import { ExtractJwt, Strategy } from 'passport-jwt';
import { DataSource } from 'typeorm';
import { AppConfig } from '../config/app-config';
import { directQuery } from '../database/direct-query';
import type { Principal, Role } from './principal';
import { JWT_ALGORITHM, JWT_AUDIENCE, JWT_ISSUER } from './token.service';

export const JWT_STRATEGY = 'jwt';

/**
 * Each application gets its own passport instance: the global one is a process singleton, and a
 * second app in the same process (tests, two instances on one database) would replace this app's
 * strategy and its database connection.
 */
const passportInstances = new WeakMap<object, passport.Authenticator>();

const USER_ID = /^[1-9]\d{0,18}$/;

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
  constructor(
    config: AppConfig,
    private readonly dataSource: DataSource,
  ) {
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
    const [user] = await directQuery<UserAccessRow>(
      this.dataSource,
      'SELECT email, role, member_id, is_active, token_version FROM users WHERE id = ?',
      [claims.sub],
    );
    const active = user?.is_active === true || user?.is_active === 1 || user?.is_active === '1';
    if (!user || !active || Number(user.token_version) !== claims.ver) return false;
    return {
      userId: claims.sub,
      email: user.email,
      role: user.role,
      memberId: user.member_id === null ? null : String(user.member_id),
    };
  }
}
