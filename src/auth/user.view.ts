import type { User } from './user.entity';

export interface UserView {
  id: string;
  email: string;
  role: User['role'];
  member_id: string | null;
  is_active: boolean;
  created_at: string;
  updated_at: string;
}

/** The user as every endpoint shows it: ids as strings, ISO-8601 UTC timestamps, no secrets. */
export function userView(user: User): UserView {
  return {
    id: String(user.id),
    email: user.email,
    role: user.role,
    member_id: user.memberId === null ? null : String(user.memberId),
    is_active: user.isActive,
    created_at: user.createdAt.toISOString(),
    updated_at: user.updatedAt.toISOString(),
  };
}

/** What the audit log keeps of a user: everything an admin can change, and never the hash. */
export function userAuditSnapshot(user: User): Record<string, unknown> {
  return {
    email: user.email,
    role: user.role,
    member_id: user.memberId === null ? null : String(user.memberId),
    is_active: user.isActive,
    password_changed_at: user.passwordChangedAt.toISOString(),
  };
}

export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}
