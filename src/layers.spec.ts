import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

/*
 * The module layers, bottom first. A file may import from its own unit or from a unit of the same
 * or a lower layer, never from one above; and no two units may import each other, directly or
 * through others (a cycle inside one folder is allowed). A unit is a folder of src/, except the
 * files UNIT_OF_FILE names; the files at the root of src/ are the app.
 */
export const LAYERS: ReadonlyArray<readonly string[]> = [
  // Infrastructure: configuration, shared plumbing, connections, the metrics registry, the
  // OpenAPI decorators and problem catalogue every controller uses.
  ['config', 'common', 'database', 'redis', 'metrics', 'openapi'],
  // Beside auth and below it: the audit log and the rate limiter know a caller only by its shape;
  // the event log, which producers in every module above write in their own transactions.
  // The write freeze's switch, which the guard, quota, jobs and analytics consult.
  ['audit', 'throttle', 'events', 'maintenance'],
  ['auth'],
  ['quota'],
  ['jobs', 'analytics', 'webhooks'],
  // The app: composition (app.module, app.factory, the entity and migration lists), the probes,
  // the metrics scrape endpoint, the OpenAPI document built from the running app.
  ['app', 'health', 'metrics-endpoint', 'maintenance-endpoint', 'openapi-document'],
  // Entry points: the service, the CLI, the OpenAPI generator.
  ['main', 'cli', 'openapi-generate'],
];

/** Files that sit in another unit than their folder's. */
export const UNIT_OF_FILE: Readonly<Record<string, string>> = {
  'metrics/metrics.controller.ts': 'metrics-endpoint',
  'maintenance/maintenance.controller.ts': 'maintenance-endpoint',
  'openapi/document.ts': 'openapi-document',
  'openapi/generate.ts': 'openapi-generate',
  'main.ts': 'main',
  'openapi/setup.ts': 'openapi-document',
};

/**
 * Imports that break the rules for now, each with the reason and the change that removes it. An
 * entry that matches no import any more fails the test, so it is removed with its cause.
 */
export const KNOWN_EXCEPTIONS: ReadonlyArray<{ readonly from: string; readonly to: string; readonly why: string }> = [];

/** The modules that may be @Global(): what every module needs and nobody should have to list. */
export const GLOBAL_MODULES = [
  'app.module.ts', // the root logger (LoggingModule)
  'config/config.module.ts',
  'metrics/metrics.module.ts',
  'redis/redis.module.ts',
];

const SRC = __dirname;

export function unitOf(file: string): string {
  return UNIT_OF_FILE[file] ?? (file.includes('/') ? file.slice(0, file.indexOf('/')) : 'app');
}

function layerOf(unit: string): number {
  return LAYERS.findIndex((layer) => layer.includes(unit));
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.spec.ts') ? [relative(SRC, path)] : [];
  });
}

/** Every relative import of every src file (static, type-only, re-exports, dynamic), as src paths. */
export function readImports(): Map<string, string[]> {
  const imports = new Map<string, string[]>();
  for (const file of sourceFiles(SRC)) {
    const text = readFileSync(join(SRC, file), 'utf8');
    const targets = ts
      .preProcessFile(text, true, true)
      .importedFiles.map((imported) => imported.fileName)
      .filter((name) => name.startsWith('.'))
      .map((name) => relative(SRC, resolve(SRC, dirname(file), name)) + '.ts');
    imports.set(file, targets);
  }
  return imports;
}

export interface LayerReport {
  readonly unplaced: string[];
  readonly upward: string[];
  readonly cycles: string[][];
  readonly unusedExceptions: string[];
}

export function checkLayers(
  imports: ReadonlyMap<string, readonly string[]>,
  exceptions: typeof KNOWN_EXCEPTIONS = KNOWN_EXCEPTIONS,
): LayerReport {
  const unplaced = new Set<string>();
  const upward: string[] = [];
  const usedExceptions = new Set<number>();
  const graph = new Map<string, Set<string>>();
  for (const [file, targets] of imports) {
    const from = unitOf(file);
    if (layerOf(from) < 0) unplaced.add(from);
    for (const target of targets) {
      const to = unitOf(target);
      if (to === from) continue;
      if (layerOf(to) < 0) unplaced.add(to);
      const exception = exceptions.findIndex(
        (e) => file.startsWith(e.from) && target.replace(/\.ts$/, '').startsWith(e.to),
      );
      if (exception >= 0) {
        usedExceptions.add(exception);
        continue;
      }
      if (layerOf(from) >= 0 && layerOf(to) > layerOf(from)) upward.push(`${file} (${from}) imports ${target} (${to})`);
      graph.set(from, (graph.get(from) ?? new Set()).add(to));
    }
  }
  return {
    unplaced: [...unplaced].sort(),
    upward,
    cycles: findCycles(graph),
    unusedExceptions: exceptions.filter((_, i) => !usedExceptions.has(i)).map((e) => `${e.from} -> ${e.to}`),
  };
}

/** The strongly connected components with more than one unit (Tarjan). */
function findCycles(graph: ReadonlyMap<string, ReadonlySet<string>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (unit: string): void => {
    index.set(unit, index.size);
    low.set(unit, index.get(unit)!);
    stack.push(unit);
    onStack.add(unit);
    for (const next of graph.get(unit) ?? []) {
      if (!index.has(next)) {
        visit(next);
        low.set(unit, Math.min(low.get(unit)!, low.get(next)!));
      } else if (onStack.has(next)) {
        low.set(unit, Math.min(low.get(unit)!, index.get(next)!));
      }
    }
    if (low.get(unit) === index.get(unit)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== unit);
      if (component.length > 1) cycles.push(component.sort());
    }
  };
  for (const unit of graph.keys()) if (!index.has(unit)) visit(unit);
  return cycles;
}

describe('module layers', () => {
  it('places every unit of src/ in a layer, imports nothing from a layer above, and has no cycle', () => {
    expect(checkLayers(readImports())).toEqual({ unplaced: [], upward: [], cycles: [], unusedExceptions: [] });
  });

  it('finds an upward import, a cycle, a unit nobody placed and a stale exception', () => {
    const report = checkLayers(
      new Map([
        ['database/data-source-options.ts', ['quota/entities/index.ts']],
        ['auth/users.service.ts', ['audit/audit.service.ts']],
        ['audit/audit.service.ts', ['throttle/x.ts']],
        ['throttle/x.ts', ['audit/y.ts']],
        ['newthing/a.ts', ['common/http.ts']],
      ]),
      [{ from: 'jobs/', to: 'quota/quota-database', why: 'test' }],
    );
    expect(report).toEqual({
      unplaced: ['newthing'],
      upward: ['database/data-source-options.ts (database) imports quota/entities/index.ts (quota)'],
      cycles: [['audit', 'throttle']],
      unusedExceptions: ['jobs/ -> quota/quota-database'],
    });
  });

  it('keeps @Global() to the modules every other one needs', () => {
    const global = sourceFiles(SRC).filter((file) => /^@Global\(\)/m.test(readFileSync(join(SRC, file), 'utf8')));
    expect(global.sort()).toEqual([...GLOBAL_MODULES].sort());
  });
});
