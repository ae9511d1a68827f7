import { Webhook } from 'standardwebhooks';

/** What signs one attempt: the subscription's secrets as stored (`whsec_` + base64). */
export interface SigningSecrets {
  readonly secret: string;
  /** The secret before the last rotation, still signing until `previousSecretExpiresAt`. */
  readonly previousSecret: string | null;
  readonly previousSecretExpiresAt: Date | null;
}

export interface SignedHeaders {
  readonly 'webhook-id': string;
  readonly 'webhook-timestamp': string;
  readonly 'webhook-signature': string;
}

/**
 * The Standard Webhooks headers of one attempt: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`
 * keyed with the secret's decoded bytes. While a rotation overlaps, the previous secret signs too
 * (`v1,<new> v1,<old>`), so a receiver that still has only the old secret keeps verifying until
 * it switches. The timestamp is the attempt's own, so a retry is not rejected as a replay.
 */
export function signAttempt(eventUid: string, body: string, secrets: SigningSecrets, at: Date): SignedHeaders {
  const signatures = [new Webhook(secrets.secret).sign(eventUid, at, body)];
  if (
    secrets.previousSecret !== null &&
    secrets.previousSecretExpiresAt !== null &&
    secrets.previousSecretExpiresAt.getTime() > at.getTime()
  ) {
    signatures.push(new Webhook(secrets.previousSecret).sign(eventUid, at, body));
  }
  return {
    'webhook-id': eventUid,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': signatures.join(' '),
  };
}
