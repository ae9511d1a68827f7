import { Column, CreateDateColumn, Entity, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';

export const RESET_PERIODS = ['none', 'daily', 'weekly', 'monthly'] as const;
export type ResetPeriod = (typeof RESET_PERIODS)[number];

@Entity('member_quota_config')
export class QuotaConfig {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id!: string;

  @Column({ name: 'membership_type', type: 'varchar', length: 32 })
  membershipType!: string;

  @Column({ name: 'max_quota', type: 'int' })
  maxQuota!: number;

  @Column({ name: 'reset_period', type: 'varchar', length: 16 })
  resetPeriod!: ResetPeriod;

  @Column({ name: 'is_active', type: 'boolean' })
  isActive!: boolean;

  @Column({ type: 'varchar', length: 500, nullable: true })
  description!: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'datetime', precision: 3 })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'datetime', precision: 3 })
  updatedAt!: Date;
}
