import { Table, type QueryRunner, type TableCheckOptions, type TableColumnOptions, type TableOptions } from 'typeorm';

/**
 * The few places where one portable migration has to speak each driver's dialect: SQLite only
 * auto-increments an INTEGER PRIMARY KEY, and the two spell "now, with milliseconds" differently.
 */
export function dialect(queryRunner: QueryRunner) {
  const isSqlite = queryRunner.connection.options.type === 'better-sqlite3';
  const idType = isSqlite ? 'integer' : 'bigint';
  const now = isSqlite ? "(strftime('%Y-%m-%d %H:%M:%f','now'))" : 'CURRENT_TIMESTAMP(3)';
  return {
    isSqlite,
    id(name = 'id'): TableColumnOptions {
      return {
        name,
        type: idType,
        isPrimary: true,
        isGenerated: true,
        generationStrategy: 'increment',
        unsigned: !isSqlite,
      };
    },
    reference(name: string, nullable = false): TableColumnOptions {
      return { name, type: idType, isNullable: nullable, unsigned: !isSqlite };
    },
    /**
     * Creates a table with its CHECK constraints on both drivers: TypeORM writes them inline for
     * SQLite but drops them for MySQL, where MariaDB 10.2+ and MySQL 8.0.16+ enforce them.
     */
    async createTable(options: TableOptions & { checks?: TableCheckOptions[] }): Promise<void> {
      const { checks = [], ...rest } = options;
      await queryRunner.createTable(new Table(isSqlite ? options : rest));
      if (isSqlite) return;
      for (const check of checks) {
        await queryRunner.query(
          `ALTER TABLE \`${options.name}\` ADD CONSTRAINT \`${check.name}\` CHECK (${check.expression})`,
        );
      }
    },
    timestamp(name: string, nullable = false): TableColumnOptions {
      return nullable
        ? { name, type: 'datetime', precision: 3, isNullable: true }
        : { name, type: 'datetime', precision: 3, default: now };
    },
  };
}

/** A list of literals for a CHECK (... IN (...)) constraint; the values are the migration's own constants. */
export function quotedList(values: readonly string[]): string {
  return values.map((v) => `'${v}'`).join(', ');
}
