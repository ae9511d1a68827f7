import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const SRC = join(__dirname, '..');

/**
 * Nothing outside src/database asks which driver runs: the dialect adapter (src/database/dialect.ts)
 * provides every fragment that differs. Configuration may still read DB_CONNECTION.
 */
const DRIVER_CHECK =
  /(?<!\/)\bdialect\b|\bisMysql\b|\bisSqlite\b|===?\s*'(?:mysql|sqlite|better-sqlite3)'|'(?:mysql|sqlite|better-sqlite3)'\s*===?|options\.type\b|\bdatabase\.kind\b/;

/** Directories and files allowed to name the driver. */
const ALLOWED = [/^database\//, /^config\//];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

function driverChecks(): string[] {
  const found: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const path = relative(SRC, file);
    if (ALLOWED.some((allowed) => allowed.test(path))) continue;
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, index) => {
        if (DRIVER_CHECK.test(line)) found.push(`${path}:${index + 1}: ${line.trim()}`);
      });
  }
  return found;
}

describe('driver checks', () => {
  it('recognises a driver check (the scan works)', () => {
    for (const line of [
      "if (s.dialect === 'mysql') {",
      "const lock = this.dataSource.options.type === 'mysql' ? x : y;",
      "config.database.kind === 'sqlite'",
      "'sqlite' === kind",
    ]) {
      expect(DRIVER_CHECK.test(line)).toBe(true);
    }
    expect(DRIVER_CHECK.test('const lock = s.sql.forUpdate;')).toBe(false);
  });

  it('finds none outside src/database and src/config', () => {
    expect(driverChecks()).toEqual([]);
  });
});
