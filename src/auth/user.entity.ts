import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { bigintString } from '../database/bigint-string';
import type { Role } from './principal';

/** Timestamps are set by the code (not column defaults) so both drivers keep milliseconds. */
@Entity('users')
export class User {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id!: string;

  /** Always lower-cased: the unique index makes emails case-insensitive on every driver. */
  @Column({ type: 'varchar', length: 191 })
  email!: string;

  /** Never selected unless asked for: nothing outside the login path should ever see it. */
  @Column({ name: 'password_hash', type: 'varchar', length: 255, select: false })
  passwordHash!: string;

  @Column({ type: 'varchar', length: 16 })
  role!: Role;

  @Column({ name: 'member_id', type: 'bigint', nullable: true, transformer: bigintString })
  memberId!: string | null;

  @Column({ name: 'is_active', type: 'boolean' })
  isActive!: boolean;

  @Column({ name: 'failed_login_count', type: 'int' })
  failedLoginCount!: number;

  @Column({ name: 'failed_login_window_started_at', type: 'datetime', precision: 3, nullable: true })
  failedLoginWindowStartedAt!: Date | null;

  @Column({ name: 'locked_until', type: 'datetime', precision: 3, nullable: true })
  lockedUntil!: Date | null;

  @Column({ name: 'token_version', type: 'int' })
  tokenVersion!: number;

  @Column({ name: 'password_changed_at', type: 'datetime', precision: 3 })
  passwordChangedAt!: Date;

  @Column({ name: 'last_login_at', type: 'datetime', precision: 3, nullable: true })
  lastLoginAt!: Date | null;

  @Column({ name: 'created_at', type: 'datetime', precision: 3 })
  createdAt!: Date;

  @Column({ name: 'updated_at', type: 'datetime', precision: 3 })
  updatedAt!: Date;
}
