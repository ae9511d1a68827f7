import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { AppError } from './app-error';
import { ERROR_CATALOGUE, ERROR_CODES, STATUS_TITLES, type ErrorCode } from './error-codes';

const SRC = join(__dirname, '..');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.spec.ts') ? [path] : [];
  });
}

const CODE_LITERAL = /'([a-z][a-z0-9_]*)'/g;

/**
 * The problem codes the source names where a code is expected: the first argument of an AppError
 * (or of a subclass's `super`), the arguments of @ApiProblems, lists typed `ErrorCode[]`, the
 * filter's status table and the codes the OpenAPI document adds to every route of a kind.
 */
function codesUsedInSource(): Array<{ file: string; code: string }> {
  const used: Array<{ file: string; code: string }> = [];
  for (const path of sourceFiles(SRC)) {
    const file = relative(SRC, path);
    if (file === 'common/error-codes.ts') continue;
    const text = readFileSync(path, 'utf8');
    const spans = [
      ...[...text.matchAll(/(?:new AppError|\bsuper)\(\s*('[^']*')/g)].map((m) => m[1]),
      ...[...text.matchAll(/ApiProblems\(([^)]*)\)/g)].map((m) => m[1]),
      ...[...text.matchAll(/ErrorCode\[\] = \[([^\]]*)\]/g)].map((m) => m[1]),
      ...[...text.matchAll(/ErrorCode>+ = \{([^}]*)\}/g)].map((m) => m[1]),
      ...[...text.matchAll(/codes\.push\(([^)]*)\)/g)].map((m) => m[1]),
    ];
    for (const span of spans) for (const [, code] of span.matchAll(CODE_LITERAL)) used.push({ file, code });
  }
  return used;
}

describe('the error code catalogue', () => {
  const used = codesUsedInSource();

  it('finds the codes the source uses (the scan itself works)', () => {
    expect(used.length).toBeGreaterThan(50);
    expect(used).toEqual(expect.arrayContaining([{ file: 'jobs/operations.service.ts', code: 'operation_finished' }]));
  });

  it('holds every code the source uses', () => {
    expect(used.filter(({ code }) => !(ERROR_CODES as readonly string[]).includes(code))).toEqual([]);
  });

  it('holds no code that nothing raises', () => {
    const raised = new Set(used.map(({ code }) => code));
    expect(ERROR_CODES.filter((code) => !raised.has(code))).toEqual([]);
  });

  it('gives every code a status with a title, which AppError answers', () => {
    for (const code of ERROR_CODES) {
      const { status } = ERROR_CATALOGUE[code];
      expect({ code, title: STATUS_TITLES[status] }).toEqual({ code, title: expect.any(String) });
      expect({ code, status: new AppError(code, 'detail').status }).toEqual({ code, status });
    }
  });

  it('is a closed union: AppError refuses a code the catalogue does not hold', () => {
    // @ts-expect-error 'no_such_code' is not an ErrorCode (npm run check fails if this compiles).
    const code: ErrorCode = 'no_such_code';
    expect(ERROR_CODES).not.toContain(code);
  });
});
