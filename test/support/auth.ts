import { randomBytes } from 'node:crypto';
import { DataSource } from 'typeorm';
import { TokenService } from '../../src/auth/token.service';
import type { Role } from '../../src/auth/principal';
import { UsersService } from '../../src/auth/users.service';
import type { TestApp } from './test-app';

export const TEST_PASSWORD = 'correct-horse-battery-staple';

export interface CreateUserOptions {
  readonly role: Role;
  readonly email?: string;
  readonly password?: string;
  /** For role `member`: the member the user acts as; a fresh member is created when omitted. */
  readonly memberId?: string;
}

export interface TestUser {
  readonly userId: string;
  readonly email: string;
  readonly password: string;
  readonly role: Role;
  readonly memberId: string | null;
}

export interface LoggedIn extends TestUser {
  readonly token: string;
}

function uniqueEmail(role: string): string {
  return `${role}-${randomBytes(5).toString('hex')}@example.test`;
}

/**
 * A member row (and its membership type) written straight to the database, for suites that only
 * need a member to link a `member` user to. Columns not named here take their schema defaults.
 */
export async function createTestMember(testApp: TestApp, externalId = `ext-${randomBytes(6).toString('hex')}`) {
  const dataSource = testApp.app.get(DataSource);
  const membershipType = `t${randomBytes(4).toString('hex')}`;
  await dataSource.query('INSERT INTO member_quota_config (membership_type, max_quota) VALUES (?, ?)', [
    membershipType,
    10,
  ]);
  await dataSource.query('INSERT INTO members (external_id, membership_type, quota_balance) VALUES (?, ?, ?)', [
    externalId,
    membershipType,
    0,
  ]);
  const rows: Array<{ id: string | number }> = await dataSource.query('SELECT id FROM members WHERE external_id = ?', [
    externalId,
  ]);
  return { memberId: String(rows[0].id), externalId, membershipType };
}

/** Creates a user through the service (hash, audit row and all), as an admin would. */
export async function createUser(testApp: TestApp, options: CreateUserOptions): Promise<TestUser> {
  const email = options.email ?? uniqueEmail(options.role);
  const password = options.password ?? TEST_PASSWORD;
  const memberId = options.role === 'member' ? (options.memberId ?? (await createTestMember(testApp)).memberId) : null;
  const user = await testApp.app.get(UsersService).create('system', { email, password, role: options.role, memberId });
  return { userId: String(user.id), email: user.email, password, role: user.role, memberId };
}

/**
 * A fresh user of the role and a real access token for it, issued by the service's own token
 * service (no HTTP login, so suites do not spend the per-IP login rate limit).
 */
export async function loginAs(testApp: TestApp, role: Role, options: Omit<CreateUserOptions, 'role'> = {}) {
  const user = await createUser(testApp, { ...options, role });
  return { ...user, token: await tokenFor(testApp, user.userId) };
}

/** A token for an existing user, under its current token version. */
export async function tokenFor(testApp: TestApp, userId: string): Promise<string> {
  const users = testApp.app.get(UsersService);
  const user = await users.get(userId);
  return (await testApp.app.get(TokenService).issue(user)).accessToken;
}

export function bearer(token: string): { Authorization: string } {
  return { Authorization: `Bearer ${token}` };
}
