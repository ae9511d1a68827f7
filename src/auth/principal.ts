export const ROLES = ['admin', 'operator', 'service', 'member'] as const;
export type Role = (typeof ROLES)[number];

/** Who is calling, as established by the bearer token; passed explicitly from controllers to services. */
export interface Principal {
  readonly userId: string;
  readonly email: string;
  readonly role: Role;
  /** Set for `member` users: the only member whose data the token can reach. */
  readonly memberId: string | null;
  /** The HTTP request this caller is making, when there is one: the audit log names it. */
  readonly requestId?: string | null;
  /**
   * Present when the token's user row has not been looked up for this request (routes marked
   * @ChecksCallerInTransaction): the route's own transaction checks it, see PendingCallerCheck.
   */
  readonly pendingCheck?: PendingCallerCheck;
}

/**
 * "This token's user is still active and the token's version still current", left for the route
 * to check inside its own transaction, where it costs no round trip of its own: a ledger change
 * carries it as a condition of its update. Whoever checks it sets `confirmed`. Every other answer
 * settles it first: the route's own success path, and the problem filter for every error, so a
 * token that no longer holds gets 401 whatever the request would otherwise have been told.
 */
export interface PendingCallerCheck {
  readonly userId: string;
  readonly tokenVersion: number;
  confirmed: boolean;
  /** Looks the user up now (nothing to do once confirmed); rejects with 401 invalid_token when the token no longer holds. */
  settle(): Promise<void>;
}
