import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn } from 'typeorm';

export const HOLD_STATUSES = ['held', 'committed', 'released', 'expired'] as const;
export type HoldStatus = (typeof HOLD_STATUSES)[number];

/**
 * Units reserved for a caller that knows the final amount only afterwards. The units leave the
 * member's balance when the hold is made (a `hold` ledger row) and `members.quota_held` counts
 * them until the hold is settled: committed (the committed part becomes a `consumption` row),
 * released, or expired (a `hold_release` row gives back what was not committed). `status` moves
 * from `held` once, by a conditional update, so exactly one settlement wins.
 */
@Entity('quota_holds')
export class QuotaHold {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id!: string;

  @Column({ name: 'member_id', type: 'bigint' })
  memberId!: string;

  @Column({ type: 'int' })
  amount!: number;

  @Column({ type: 'varchar', length: 16 })
  status!: HoldStatus;

  @Column({ name: 'committed_amount', type: 'int', nullable: true })
  committedAmount!: number | null;

  @Column({ name: 'released_amount', type: 'int', nullable: true })
  releasedAmount!: number | null;

  @Column({ type: 'varchar', length: 500, nullable: true })
  note!: string | null;

  /** The user that made the hold. */
  @Column({ name: 'created_by', type: 'varchar', length: 64 })
  createdBy!: string;

  @CreateDateColumn({ name: 'created_at', type: 'datetime', precision: 3 })
  createdAt!: Date;

  @Column({ name: 'expires_at', type: 'datetime', precision: 3 })
  expiresAt!: Date;

  @Column({ name: 'settled_at', type: 'datetime', precision: 3, nullable: true })
  settledAt!: Date | null;
}
