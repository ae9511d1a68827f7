import { Column, Entity, PrimaryColumn } from 'typeorm';

/**
 * A claimed Idempotency-Key. The row is inserted in the same transaction as the balance change it
 * guards, so it exists exactly when that change committed; the answer is rebuilt from the history
 * row the change wrote.
 */
@Entity('idempotency_keys')
export class IdempotencyKey {
  /** sha256 of the caller and the key: keys are scoped per caller. */
  @PrimaryColumn({ name: 'key_hash', type: 'varchar', length: 64 })
  keyHash!: string;

  /** The caller (user id) that owns the key. */
  @Column({ type: 'varchar', length: 64 })
  scope!: string;

  /** sha256 of the operation, the member and the canonical request body. */
  @Column({ name: 'request_hash', type: 'varchar', length: 64 })
  requestHash!: string;

  @Column({ name: 'member_id', type: 'bigint' })
  memberId!: string;

  @Column({ name: 'created_at', type: 'datetime', precision: 3 })
  createdAt!: Date;

  @Column({ name: 'expires_at', type: 'datetime', precision: 3 })
  expiresAt!: Date;
}
