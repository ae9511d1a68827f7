import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';

/**
 * The quota_operations table, mapped only so schema-wide tooling (table counts in tests) sees it;
 * the jobs services read and write it with SQL.
 */
@Entity('quota_operations')
export class QuotaOperation {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id!: string;

  @Column({ type: 'varchar', length: 32 })
  kind!: string;

  @Column({ type: 'varchar', length: 16 })
  status!: string;
}
