import { Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { DataSource, Not, type EntityManager, type FindOptionsWhere, type Repository } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import { AppError, NotFoundError, ValidationFailedError } from '../common/app-error';
import { dialectOf } from '../database/dialect';
import { writeTransaction } from '../database/writer';
import { PasswordHasher } from './password-hasher';
import type { Principal, Role } from './principal';
import { User } from './user.entity';
import { normalizeEmail, userAuditSnapshot } from './user.view';

export interface CreateUserInput {
  readonly email: string;
  readonly password: string;
  readonly role: Role;
  readonly memberId?: string | null;
}

export interface UpdateUserInput {
  readonly role?: Role;
  readonly isActive?: boolean;
  readonly password?: string;
  readonly memberId?: string;
}

export interface UserListQuery {
  readonly page: number;
  readonly perPage: number;
  readonly role?: Role;
  readonly isActive?: boolean;
}

export type Actor = Principal | 'system';

export type BootstrapOutcome = 'created' | 'admin_exists' | 'email_taken';

const UNIQUE_VIOLATION_CODES = new Set(['ER_DUP_ENTRY', 'SQLITE_CONSTRAINT_UNIQUE']);

function isUniqueViolation(error: unknown): boolean {
  const driverError = (error as { driverError?: { code?: unknown } }).driverError;
  const code = driverError?.code ?? (error as { code?: unknown }).code;
  return typeof code === 'string' && UNIQUE_VIOLATION_CODES.has(code);
}

const emailTaken = () => new AppError('email_taken', 'A user with this email already exists.');

/**
 * Users and every change to them. Each change runs in one transaction together with its audit
 * row; disabling, a role change and a password change bump the token version, which revokes the
 * tokens the user already holds.
 */
@Injectable()
export class UsersService {
  constructor(
    @InjectRepository(User) private readonly users: Repository<User>,
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly audit: AuditService,
    private readonly hasher: PasswordHasher,
  ) {}

  async get(id: string): Promise<User> {
    const user = await this.users.findOneBy({ id });
    if (!user) throw new NotFoundError('User');
    return user;
  }

  async list(query: UserListQuery): Promise<{ users: User[]; total: number }> {
    const where: FindOptionsWhere<User> = {};
    if (query.role !== undefined) where.role = query.role;
    if (query.isActive !== undefined) where.isActive = query.isActive;
    const [users, total] = await this.users.findAndCount({
      where,
      order: { id: 'ASC' },
      skip: (query.page - 1) * query.perPage,
      take: query.perPage,
    });
    return { users, total };
  }

  async create(actor: Actor, input: CreateUserInput): Promise<User> {
    const email = normalizeEmail(input.email);
    const memberId = input.memberId ?? null;
    this.assertMemberLink(input.role, memberId);
    // Hash before the transaction: tens of milliseconds of CPU must not hold database locks.
    const passwordHash = await this.hasher.hash(input.password);
    try {
      return await writeTransaction(this.dataSource, async (manager) => {
        if (memberId !== null) await this.assertMemberExists(manager, memberId);
        if (await manager.existsBy(User, { email })) throw emailTaken();
        const now = new Date();
        const inserted = await manager.insert(User, {
          email,
          passwordHash,
          role: input.role,
          memberId,
          isActive: true,
          failedLoginCount: 0,
          failedLoginWindowStartedAt: null,
          lockedUntil: null,
          tokenVersion: 1,
          passwordChangedAt: now,
          lastLoginAt: null,
          createdAt: now,
          updatedAt: now,
        });
        const id = String((inserted.identifiers[0] as { id: string | number }).id);
        const user = await manager.findOneByOrFail(User, { id });
        await this.audit.record(manager, {
          actor,
          action: 'user.create',
          entityType: 'user',
          entityId: id,
          before: null,
          after: userAuditSnapshot(user),
        });
        return user;
      });
    } catch (err) {
      // Two concurrent creates of one email: the unique index decides, the loser gets the same 409.
      if (isUniqueViolation(err)) throw emailTaken();
      throw err;
    }
  }

  async update(actor: Actor, id: string, input: UpdateUserInput): Promise<User> {
    if (
      input.role === undefined &&
      input.isActive === undefined &&
      input.password === undefined &&
      input.memberId === undefined
    ) {
      throw new ValidationFailedError(
        [{ field: '', message: 'send at least one of role, is_active, password, member_id' }],
        'Nothing to change.',
      );
    }
    const passwordHash = input.password === undefined ? undefined : await this.hasher.hash(input.password);
    return writeTransaction(this.dataSource, async (manager) => {
      const user = await manager.findOne(User, { where: { id }, ...this.rowLock() });
      if (!user) throw new NotFoundError('User');
      const before = userAuditSnapshot(user);
      const role = input.role ?? user.role;
      const memberId = role === 'member' ? (input.memberId ?? user.memberId) : null;
      if (input.memberId !== undefined && role !== 'member') {
        throw new ValidationFailedError([{ field: 'member_id', message: 'member_id is only allowed for role member' }]);
      }
      this.assertMemberLink(role, memberId);
      if (memberId !== null && memberId !== user.memberId) await this.assertMemberExists(manager, memberId);
      const isActive = input.isActive ?? user.isActive;
      if (user.role === 'admin' && user.isActive && (role !== 'admin' || !isActive)) {
        await this.assertAnotherActiveAdmin(manager, user.id);
      }

      const now = new Date();
      const changes: Partial<User> = {};
      if (role !== user.role) changes.role = role;
      if (String(memberId) !== String(user.memberId)) changes.memberId = memberId;
      if (isActive !== user.isActive) changes.isActive = isActive;
      if (passwordHash !== undefined) {
        changes.passwordHash = passwordHash;
        changes.passwordChangedAt = now;
        // A new password set by an admin is also the way out of a lockout.
        changes.failedLoginCount = 0;
        changes.failedLoginWindowStartedAt = null;
        changes.lockedUntil = null;
      }
      if (Object.keys(changes).length === 0) return user;
      const revokes =
        changes.role !== undefined ||
        changes.memberId !== undefined ||
        changes.isActive === false ||
        changes.passwordHash !== undefined;
      if (revokes) changes.tokenVersion = user.tokenVersion + 1;
      changes.updatedAt = now;
      await manager.update(User, { id: user.id }, changes);

      const updated = await manager.findOneByOrFail(User, { id: user.id });
      const after = userAuditSnapshot(updated);
      const changedKeys = Object.keys(after).filter((key) => after[key] !== before[key]);
      await this.audit.record(manager, {
        actor,
        action: 'user.update',
        entityType: 'user',
        entityId: String(user.id),
        before: Object.fromEntries(changedKeys.map((key) => [key, before[key]])),
        after: Object.fromEntries(changedKeys.map((key) => [key, after[key]])),
      });
      return updated;
    });
  }

  /** Whether anyone can administer the service yet (an active admin exists). */
  async hasActiveAdmin(): Promise<boolean> {
    return this.users.existsBy({ role: 'admin', isActive: true });
  }

  /**
   * ADMIN_EMAIL + ADMIN_PASSWORD at start-up: creates that admin once, only while no admin exists.
   * Two instances starting together race on the unique email; the loser sees `admin_exists`.
   */
  async ensureBootstrapAdmin(email: string, password: string): Promise<BootstrapOutcome> {
    if (await this.users.existsBy({ role: 'admin' })) return 'admin_exists';
    if (await this.users.existsBy({ email: normalizeEmail(email) })) return 'email_taken';
    try {
      await this.create('system', { email, password, role: 'admin' });
      return 'created';
    } catch (err) {
      if (err instanceof AppError && err.code === 'email_taken') {
        return (await this.users.existsBy({ role: 'admin' })) ? 'admin_exists' : 'email_taken';
      }
      throw err;
    }
  }

  private assertMemberLink(role: Role, memberId: string | null): void {
    if (role === 'member' && memberId === null) {
      throw new ValidationFailedError([{ field: 'member_id', message: 'member_id is required for role member' }]);
    }
    if (role !== 'member' && memberId !== null) {
      throw new ValidationFailedError([{ field: 'member_id', message: 'member_id is only allowed for role member' }]);
    }
  }

  private async assertMemberExists(manager: EntityManager, memberId: string): Promise<void> {
    // Members belong to the quota module, above auth: the row is looked up by its table.
    const member: unknown = await manager
      .createQueryBuilder()
      .select('1', 'found')
      .from('members', 'm')
      .where('m.id = :memberId', { memberId })
      .getRawOne();
    if (member === undefined) {
      throw new ValidationFailedError([{ field: 'member_id', message: 'no member has this id' }]);
    }
  }

  /** Nobody may disable or demote the last active admin: the service would have no way back in. */
  private async assertAnotherActiveAdmin(manager: EntityManager, exceptId: string): Promise<void> {
    const others = await manager.find(User, {
      select: { id: true },
      where: { role: 'admin', isActive: true, id: Not(exceptId) },
      ...this.rowLock(),
    });
    if (others.length === 0) {
      throw new AppError('last_admin', 'This is the last active admin; create or enable another admin first.');
    }
  }

  /** SQLite serialises writers by itself and has no row locks; MySQL needs FOR UPDATE. */
  private rowLock(): { lock?: { mode: 'pessimistic_write' } } {
    return dialectOf(this.dataSource).pessimisticWrite;
  }
}
