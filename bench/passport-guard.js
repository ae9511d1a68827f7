'use strict';
/**
 * Preloaded into the service by bench/auth.js (node --require) for its comparison run: every
 * request is authenticated the way `@nestjs/passport`'s `AuthGuard('jwt')` does it (passport-jwt
 * verifies the signature and claims, then the strategy looks the user up), instead of through
 * JwtAuthenticator's verified-token cache. Never loaded by the service itself.
 */
const path = require('node:path');
const { AuthGuard } = require('@nestjs/passport');
const passport = require('passport');
const { ExecutionContextHost } = require('@nestjs/core/helpers/execution-context-host');
const { JwtAuthenticator } = require(path.join(__dirname, '../dist/src/auth/jwt-authenticator.js'));
const { INVALID_TOKEN } = require(path.join(__dirname, '../dist/src/auth/token-errors.js'));

const guard = new (AuthGuard('jwt'))();
let registered = false;

JwtAuthenticator.prototype.authenticate = async function authenticate(req, res) {
  if (!registered) {
    // AuthGuard uses the process-wide passport instance; the app's strategy registers on its own.
    passport.use('jwt', this.strategy);
    registered = true;
  }
  try {
    await guard.canActivate(new ExecutionContextHost([req, res, () => undefined]));
  } catch {
    throw INVALID_TOKEN();
  }
  return req.user;
};
