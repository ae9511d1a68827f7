import type { OperationObject, ResponseObject } from '@nestjs/swagger';
import { ERROR_CATALOGUE, ERROR_CODES } from '../../src/common/error-codes';
import { HTTP_METHODS, readCommittedDocument } from './openapi-check';

/** The codes openapi.json documents, per route and status (from each problem response's description). */
function documentedCodes(): Array<{ where: string; status: string; code: string }> {
  const { document } = readCommittedDocument();
  return Object.entries(document.paths).flatMap(([path, item]) =>
    HTTP_METHODS.flatMap((method) => {
      const operation = (item as Record<string, OperationObject | undefined>)[method];
      const responses = Object.entries((operation?.responses ?? {}) as Record<string, ResponseObject>);
      return responses
        .filter(([, response]) => response.content?.['application/problem+json'] !== undefined)
        .flatMap(([status, response]) =>
          [...(/^Problem: (.*)\.$/.exec(response.description)?.[1] ?? '').matchAll(/`([^`]+)`/g)].map(([, code]) => ({
            where: `${method.toUpperCase()} ${path}`,
            status,
            code,
          })),
        );
    }),
  );
}

describe('openapi.json and the error code catalogue', () => {
  const { document } = readCommittedDocument();

  it.each(['Problem', 'InsufficientQuotaProblem'])('%s.code lists exactly the catalogue', (name) => {
    const schema = document.components?.schemas?.[name] as { properties: { code: { enum?: string[] } } };
    expect(schema.properties.code.enum).toEqual([...ERROR_CODES]);
  });

  it('documents each code only under the status the catalogue gives it', () => {
    const documented = documentedCodes();
    expect(documented.length).toBeGreaterThan(100);
    const wrong = documented.filter(
      ({ code, status }) =>
        !Object.hasOwn(ERROR_CATALOGUE, code) ||
        String(ERROR_CATALOGUE[code as keyof typeof ERROR_CATALOGUE].status) !== status,
    );
    expect(wrong).toEqual([]);
  });

  it('documents every code some route raises on at least one route (the framework fallbacks on none)', () => {
    const documented = new Set(documentedCodes().map(({ code }) => code));
    const expected = ERROR_CODES.filter((code) => !('fallback' in ERROR_CATALOGUE[code]));
    expect([...documented].sort()).toEqual([...expected].sort());
    expect(documented).toContain('operation_finished');
  });
});
