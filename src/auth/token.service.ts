import { Injectable } from '@nestjs/common';
import { JwtService } from '@nestjs/jwt';
import { AppConfig } from '../config/app-config';

/** Pinned: a token signed any other way (none, RS256 with a made-up key, HS512) is refused. */
export const JWT_ALGORITHM = 'HS256';
export const JWT_ISSUER = 'quota-service';
export const JWT_AUDIENCE = 'quota-service-api';

/** What a token carries: the user id and the token version it was issued under, nothing else. */
export interface AccessTokenClaims {
  readonly sub: string;
  readonly ver: number;
}

export interface IssuedToken {
  readonly accessToken: string;
  readonly expiresIn: number;
}

@Injectable()
export class TokenService {
  constructor(
    private readonly jwt: JwtService,
    private readonly config: AppConfig,
  ) {}

  async issue(user: { id: string; tokenVersion: number }): Promise<IssuedToken> {
    const claims: AccessTokenClaims = { sub: String(user.id), ver: user.tokenVersion };
    const accessToken = await this.jwt.signAsync(claims, {
      algorithm: JWT_ALGORITHM,
      issuer: JWT_ISSUER,
      audience: JWT_AUDIENCE,
      expiresIn: this.config.jwt.expiresInSeconds,
    });
    return { accessToken, expiresIn: this.config.jwt.expiresInSeconds };
  }
}
