import type { MigrationInterface, QueryRunner } from 'typeorm';
import { dialect, quotedList } from './schema-helpers';

const ROLES = ['admin', 'operator', 'service', 'member'];

/** Users (login, roles, lockout state, token version) and the admin audit log. */
export class AuthSchema1763900100000 implements MigrationInterface {
  name = 'AuthSchema1763900100000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const d = dialect(queryRunner);

    await d.createTable({
      name: 'users',
      columns: [
        d.id(),
        // Stored lower-cased, so the unique index is case-insensitive on both drivers.
        { name: 'email', type: 'varchar', length: '191' },
        { name: 'password_hash', type: 'varchar', length: '255' },
        { name: 'role', type: 'varchar', length: '16' },
        d.reference('member_id', true),
        { name: 'is_active', type: 'boolean', default: '1' },
        { name: 'failed_login_count', type: 'int', default: '0' },
        d.timestamp('failed_login_window_started_at', true),
        d.timestamp('locked_until', true),
        // Bumped on disable, role change and password change: tokens carrying an older one are refused.
        { name: 'token_version', type: 'int', default: '1' },
        d.timestamp('password_changed_at'),
        d.timestamp('last_login_at', true),
        d.timestamp('created_at'),
        d.timestamp('updated_at'),
      ],
      indices: [
        { name: 'uq_users_email', columnNames: ['email'], isUnique: true },
        { name: 'idx_users_role_active', columnNames: ['role', 'is_active'] },
        { name: 'idx_users_member_id', columnNames: ['member_id'] },
      ],
      foreignKeys: [
        {
          name: 'fk_users_member',
          columnNames: ['member_id'],
          referencedTableName: 'members',
          referencedColumnNames: ['id'],
          onDelete: 'RESTRICT',
          onUpdate: 'RESTRICT',
        },
      ],
      checks: [
        { name: 'chk_users_role', expression: `role IN (${quotedList(ROLES)})` },
        {
          name: 'chk_users_member_link',
          expression: "(role = 'member' AND member_id IS NOT NULL) OR (role <> 'member' AND member_id IS NULL)",
        },
        { name: 'chk_users_failed_login_count', expression: 'failed_login_count >= 0' },
        { name: 'chk_users_token_version', expression: 'token_version >= 1' },
      ],
    });

    await d.createTable({
      name: 'admin_audit_log',
      columns: [
        d.id(),
        // No foreign key: the log must outlive whatever it mentions.
        d.reference('actor_user_id', true),
        { name: 'actor_label', type: 'varchar', length: '191' },
        { name: 'action', type: 'varchar', length: '64' },
        { name: 'entity_type', type: 'varchar', length: '32' },
        { name: 'entity_id', type: 'varchar', length: '64' },
        { name: 'before_json', type: 'text', isNullable: true },
        { name: 'after_json', type: 'text', isNullable: true },
        { name: 'request_id', type: 'varchar', length: '128', isNullable: true },
        d.timestamp('created_at'),
      ],
      indices: [
        { name: 'idx_admin_audit_log_entity', columnNames: ['entity_type', 'entity_id'] },
        { name: 'idx_admin_audit_log_actor', columnNames: ['actor_user_id'] },
        { name: 'idx_admin_audit_log_created_at', columnNames: ['created_at'] },
      ],
    });
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable('admin_audit_log');
    await queryRunner.dropTable('users');
  }
}
