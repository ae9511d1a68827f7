import type { Principal } from '../auth/principal';

/** Who makes an admin change: an authenticated caller, or the system (CLI, bootstrap, tests' factories). */
export type Actor = Principal | 'system';

/** The value written to `member_quota_history.actor`: a user id, or "system". */
export function actorId(actor: Actor): string {
  return actor === 'system' ? 'system' : actor.userId;
}
