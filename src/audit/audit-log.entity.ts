import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { bigintString } from '../database/bigint-string';

/** One admin change: who, what, and the entity before and after (JSON text; never secrets). */
@Entity('admin_audit_log')
export class AuditLogEntry {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id!: string;

  /** Null for changes made by the system (start-up bootstrap, CLI, scheduled work). */
  @Column({ name: 'actor_user_id', type: 'bigint', nullable: true, transformer: bigintString })
  actorUserId!: string | null;

  /** The actor's email at the time, or "system": readable even after the user is changed. */
  @Column({ name: 'actor_label', type: 'varchar', length: 191 })
  actorLabel!: string;

  @Column({ type: 'varchar', length: 64 })
  action!: string;

  @Column({ name: 'entity_type', type: 'varchar', length: 32 })
  entityType!: string;

  @Column({ name: 'entity_id', type: 'varchar', length: 64 })
  entityId!: string;

  @Column({ name: 'before_json', type: 'text', nullable: true })
  beforeJson!: string | null;

  @Column({ name: 'after_json', type: 'text', nullable: true })
  afterJson!: string | null;

  @Column({ name: 'request_id', type: 'varchar', length: 128, nullable: true })
  requestId!: string | null;

  @Column({ name: 'created_at', type: 'datetime', precision: 3 })
  createdAt!: Date;
}
