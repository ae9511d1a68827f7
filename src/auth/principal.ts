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
}
