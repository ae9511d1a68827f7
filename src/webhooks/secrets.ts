import { randomBytes } from 'node:crypto';

/** The Standard Webhooks secret format: this prefix, then the key bytes in base64. */
export const WEBHOOK_SECRET_PREFIX = 'whsec_';
/** 256-bit keys: HMAC-SHA256 gains nothing from a longer one, and a shorter one would weaken it. */
export const WEBHOOK_SECRET_BYTES = 32;

/** A new signing secret, `whsec_` + base64 of 32 random bytes (what `standardwebhooks` accepts as is). */
export function newWebhookSecret(): string {
  return WEBHOOK_SECRET_PREFIX + randomBytes(WEBHOOK_SECRET_BYTES).toString('base64');
}
