import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';

@Entity('members')
export class Member {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id!: string;

  /** The host platform's key for this member. */
  @Column({ name: 'external_id', type: 'varchar', length: 191 })
  externalId!: string;

  @Column({ name: 'membership_type', type: 'varchar', length: 32 })
  membershipType!: string;

  /** Changed only by the ledger, together with one history row; a CHECK keeps it at 0 or above. */
  @Column({ name: 'quota_balance', type: 'int' })
  quotaBalance!: number;

  /** Units the member's open holds keep out of the balance (quota_holds with status `held`). */
  @Column({ name: 'quota_held', type: 'int', default: 0 })
  quotaHeld!: number;

  @Column({ name: 'is_active', type: 'boolean' })
  isActive!: boolean;

  @Column({ name: 'period_started_at', type: 'datetime', precision: 3, nullable: true })
  periodStartedAt!: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'datetime', precision: 3 })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'datetime', precision: 3 })
  updatedAt!: Date;
}
