import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import * as ts from 'typescript';

const SRC = join(__dirname, '..');

/**
 * No value is ever spliced into SQL text: values travel as `?` parameters. A `${...}` inside a
 * template literal that reads as SQL must be one of:
 * - fixed text: a string literal, an UPPER_CASE module constant, a conditional between such, or a
 *   nested template built only of them;
 * - a fragment of the dialect adapter (`s.sql.forUpdate`, `this.db.sql.least(...)`);
 * - a placeholder list: `marks(n)`, `rowMarks(...)`, `xs.map(() => '?').join(', ')`;
 * - a reviewed local fragment below, each with why it holds only fixed text and placeholders.
 * The consume batch runs on a pool that accepts several statements per query, so a value spliced
 * in anywhere would be a stacked-query injection waiting to happen.
 */
const REVIEWED: Record<string, string> = {
  'analytics/analytics-sql.ts :: table': 'upsert(): a table name written in the calling code',
  "analytics/analytics-sql.ts :: columns.join(', ')": 'upsert(): column names written in the calling code',
  'analytics/analytics-sql.ts :: tail': "upsert(): the dialect adapter's upsertTail of those columns",
  'analytics/analytics-sql.ts :: values': 'upsert(): rows of `?` placeholders',
  "analytics/anomalies.repository.ts :: conditions.join(' AND ')": 'fixed conditions with `?` parameters',
  'analytics/anomalies.repository.ts :: where': 'fixed conditions with `?` parameters',
  "analytics/tail.repository.ts :: chunk.map(() => 'h.id BETWEEN ? AND ?').join(' OR ')":
    'fixed ranges of `?` parameters',
  "analytics/member-daily.repository.ts :: chunk.map(() => 'id BETWEEN ? AND ?').join(' OR ')":
    'fixed ranges of `?` parameters',
  'analytics/rollups.repository.ts :: inWhole': 'fixed condition text',
  'analytics/rollups.repository.ts :: notChanged': 'fixed condition with a `?` list',
  "analytics/rollups.repository.ts :: typeClause('m.membership_type', type)": 'a column name and `?` parameters',
  "analytics/rollups.repository.ts :: typeClause('membership_type', type)": 'a column name and `?` parameters',
  'jobs/operations.repository.ts :: clause': 'fixed conditions with `?` parameters',
  'jobs/operations.repository.ts :: count': 'fixed statement text',
  'jobs/operations.repository.ts :: expression': "the dialect adapter's LEAST/GREATEST of `?` parameters",
  "jobs/operations.repository.ts :: where.join(' AND ')": 'fixed conditions with `?` parameters',
  "quota/configs.repository.ts :: sets.join(', ')": 'fixed `column = ?` assignments',
  'quota/configs.repository.ts :: where': 'fixed conditions with `?` parameters',
  "quota/history.repository.ts :: conditions.join(' AND ')": 'fixed conditions with `?` parameters',
  "quota/holds.repository.ts :: where.join(' AND ')": 'fixed conditions with `?` parameters',
  'quota/holds.repository.ts :: clause': 'fixed conditions with `?` parameters',
  'quota/integrity.ts :: where': 'fixed conditions with `?` parameters',
  'quota/ledger-bulk.repository.ts :: index': "the dialect adapter's index hint",
  'quota/ledger-bulk.repository.ts :: list': 'a `?` list',
  'quota/ledger-bulk.repository.ts :: lock': "the dialect adapter's locking clause",
  "quota/ledger-bulk.repository.ts :: sets.join(', ')": 'fixed `column = ?` assignments',
  'quota/ledger-bulk.repository.ts :: target': 'fixed expressions of `?` parameters',
  "quota/ledger.repository.ts :: checks.join(', ')":
    'CASE WHEN over the fixed texts of CONDITION_SQL, values as `?` parameters',
  'quota/ledger.repository.ts :: whereOf(conditions)':
    'the fixed texts of CONDITION_SQL joined with AND, values as `?` parameters',
  'quota/ledger.repository.ts :: lock': "the dialect adapter's locking clause",
  'quota/members.repository.ts :: where': 'fixed conditions with `?` parameters',
  "webhooks/delivery-log.repository.ts :: where.join(' AND ')": 'fixed conditions with `?` parameters',
  "webhooks/subscriptions.repository.ts :: sets.join(', ')": 'fixed `column = ?` assignments',
};

/** The dialect adapter builds its fragments from identifiers its callers pass. */
const EXEMPT_FILES = new Set(['database/dialect.ts']);

const SQL_TEXT =
  /\b(SELECT|INSERT INTO|UPDATE|DELETE FROM|WHERE|VALUES|ON DUPLICATE|ON CONFLICT|ORDER BY|SET STATEMENT)\b/;
const CONSTANT = /^[A-Z][A-Z0-9_]*( [*/+-] [A-Z0-9_.]+)?$/;
const PLACEHOLDERS = /^(marks|rowMarks)\(.*\)$|^\w+(\.\w+)*\.map\(\(\) => '[?(), ]+'\)\.join\(', '\)$/;
const DIALECT_FRAGMENT = /^(s|session|this|this\.db|db)\.sql\.\w+(\(.*\))?$/;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'migrations' ? [] : sourceFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.spec.ts') ? [path] : [];
  });
}

function allowed(expression: ts.Expression, file: string, source: ts.SourceFile): boolean {
  if (ts.isParenthesizedExpression(expression)) return allowed(expression.expression, file, source);
  if (ts.isStringLiteral(expression) || ts.isNoSubstitutionTemplateLiteral(expression)) return true;
  if (ts.isConditionalExpression(expression)) {
    return allowed(expression.whenTrue, file, source) && allowed(expression.whenFalse, file, source);
  }
  if (ts.isTemplateExpression(expression)) {
    return expression.templateSpans.every((span) => allowed(span.expression, file, source));
  }
  const text = expression.getText(source).replace(/\s+/g, ' ');
  return (
    CONSTANT.test(text) ||
    PLACEHOLDERS.test(text) ||
    DIALECT_FRAGMENT.test(text) ||
    REVIEWED[`${file} :: ${text}`] !== undefined
  );
}

/** Every `${...}` in SQL text that is not allowed, as "file:line :: expression". */
function interpolations(files: readonly { path: string; text: string }[]): { refused: string[]; used: Set<string> } {
  const refused: string[] = [];
  const used = new Set<string>();
  for (const { path, text } of files) {
    if (EXEMPT_FILES.has(path)) continue;
    const source = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node): void => {
      if (ts.isTemplateExpression(node)) {
        const sql = node.head.text + node.templateSpans.map((span) => ` ${span.literal.text}`).join('');
        if (SQL_TEXT.test(sql)) {
          for (const span of node.templateSpans) {
            const expression = span.expression.getText(source).replace(/\s+/g, ' ');
            const key = `${path} :: ${expression}`;
            if (REVIEWED[key] !== undefined) used.add(key);
            if (!allowed(span.expression, path, source)) {
              const line = source.getLineAndCharacterOfPosition(span.expression.getStart(source)).line + 1;
              refused.push(`${path}:${line} :: ${expression}`);
            }
          }
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return { refused, used };
}

function serviceSources(): { path: string; text: string }[] {
  return sourceFiles(SRC).map((file) => ({ path: relative(SRC, file), text: readFileSync(file, 'utf8') }));
}

describe('values never spliced into SQL text', () => {
  it('refuses a value interpolated into SQL (the scan works)', () => {
    const text = [
      'const a = `SELECT * FROM members WHERE external_id = ${externalId}`;',
      'const b = `UPDATE members SET note = ${note ? `${note}` : "x"} WHERE id = ?`;',
      'const c = `SELECT id FROM members WHERE id IN (${marks(ids.length)})${s.sql.forUpdate}`;',
      'const d = `SELECT ${MEMBER_COLUMNS} FROM members WHERE id = ?${lock ? s.sql.forUpdate : ""}`;',
    ].join('\n');
    expect(interpolations([{ path: 'probe.ts', text }]).refused).toEqual([
      'probe.ts:1 :: externalId',
      'probe.ts:2 :: note ? `${note}` : "x"',
    ]);
  });

  it('finds only allowed interpolations in src/', () => {
    expect(interpolations(serviceSources()).refused).toEqual([]);
  });

  it('keeps no reviewed entry that the code no longer has', () => {
    const { used } = interpolations(serviceSources());
    expect(Object.keys(REVIEWED).filter((key) => !used.has(key))).toEqual([]);
  });
});
