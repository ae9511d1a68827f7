import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

export const HISTORY_REASONS = [
  'initial_grant',
  'consumption',
  'refund',
  'manual_adjustment',
  'bulk_adjustment',
  'periodic_reset',
  'config_change',
  'membership_change',
  'hold',
  'hold_release',
] as const;
export type HistoryReason = (typeof HISTORY_REASONS)[number];

/** Append-only ledger: for every member, quota_balance equals the sum of its deltas. */
@Entity('member_quota_history')
export class QuotaHistory {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id!: string;

  @Column({ name: 'member_id', type: 'bigint' })
  memberId!: string;

  @Column({ type: 'int' })
  delta!: number;

  @Column({ name: 'balance_after', type: 'int' })
  balanceAfter!: number;

  @Column({ type: 'varchar', length: 32 })
  reason!: HistoryReason;

  /** A user id, or "system" for scheduled work. */
  @Column({ type: 'varchar', length: 64 })
  actor!: string;

  @Column({ name: 'operation_id', type: 'bigint', nullable: true })
  operationId!: string | null;

  @Column({ name: 'idempotency_key', type: 'varchar', length: 255, nullable: true })
  idempotencyKey!: string | null;

  @Column({ type: 'varchar', length: 500, nullable: true })
  note!: string | null;

  /** A membership_change row: the member's type before the change (NULL on other rows). */
  @Column({ name: 'from_membership_type', type: 'varchar', length: 32, nullable: true })
  fromMembershipType!: string | null;

  /** A membership_change row: the member's type after the change (NULL on other rows). */
  @Column({ name: 'to_membership_type', type: 'varchar', length: 32, nullable: true })
  toMembershipType!: string | null;

  /** The hold a `hold`, `hold_release` or committed `consumption` row belongs to (NULL otherwise). */
  @Column({ name: 'hold_id', type: 'bigint', nullable: true })
  holdId!: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'datetime', precision: 3 })
  createdAt!: Date;
}
