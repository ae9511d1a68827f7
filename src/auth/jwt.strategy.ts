import { Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import { InjectRepository } from '@nestjs/typeorm';
import passport from 'passport';
import { ExtractJwt, Strategy } from 'passport-jwt';
import type { Repository } from 'typeorm';
import { AppConfig } from '../config/app-config';
import type { Principal } from './principal';
import { JWT_ALGORITHM, JWT_AUDIENCE, JWT_ISSUER } from './token.service';
import { User } from './user.entity';

export const JWT_STRATEGY = 'jwt';

/**
 * Each application gets its own passport instance: the global one is a process singleton, and a
 * second app in the same process (tests, two instances on one database) would replace this app's
 * strategy and its database connection.
 */
const passportInstances = new WeakMap<object, passport.Authenticator>();

const USER_ID = /^[1-9]\d{0,18}$/;

interface Claims {
  sub?: unknown;
  ver?: unknown;
  exp?: unknown;
}

@Injectable()
export class JwtStrategy extends PassportStrategy(Strategy, JWT_STRATEGY) {
  constructor(
    config: AppConfig,
    @InjectRepository(User) private readonly users: Repository<User>,
  ) {
    super({
      jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken(),
      secretOrKey: config.jwt.secret,
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
    const user = await this.users.findOne({
      select: { id: true, email: true, role: true, memberId: true, isActive: true, tokenVersion: true },
      where: { id: claims.sub },
    });
    if (!user || !user.isActive || user.tokenVersion !== claims.ver) return false;
    return {
      userId: String(user.id),
      email: user.email,
      role: user.role,
      memberId: user.memberId === null ? null : String(user.memberId),
    };
  }
}
