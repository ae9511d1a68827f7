import type { OpenAPIObject } from '@nestjs/swagger';
import { normalizeDocument, packageVersion, serializeDocument } from './document';

describe('serializeDocument', () => {
  it('does not depend on the order things were registered in, but keeps schema properties as declared', () => {
    const a = {
      openapi: '3.0.0',
      info: { version: '1', title: 't' },
      tags: [{ name: 'b' }, { name: 'a' }],
      paths: { '/b': { post: { responses: {} } }, '/a': { get: { responses: {} } } },
      components: { schemas: { Z: { type: 'object', properties: { id: {}, name: {} } }, A: {} } },
    } as unknown as OpenAPIObject;
    const b = {
      components: { schemas: { A: {}, Z: { properties: { id: {}, name: {} }, type: 'object' } } },
      paths: { '/a': { get: { responses: {} } }, '/b': { post: { responses: {} } } },
      tags: [{ name: 'a' }, { name: 'b' }],
      info: { title: 't', version: '1' },
      openapi: '3.0.0',
    } as unknown as OpenAPIObject;
    expect(serializeDocument(a)).toBe(serializeDocument(b));
    const normalized = normalizeDocument(a);
    expect(Object.keys(normalized)).toEqual(['openapi', 'info', 'servers', 'tags', 'paths', 'components']);
    expect(Object.keys(normalized.paths)).toEqual(['/a', '/b']);
    expect(Object.keys(normalized.components?.schemas ?? {})).toEqual(['A', 'Z']);
    expect(Object.keys((normalized.components?.schemas?.Z as { properties: object }).properties)).toEqual([
      'id',
      'name',
    ]);
  });

  it('reads the version from package.json', () => {
    expect(packageVersion()).toMatch(/^\d+\.\d+\.\d+/);
  });
});
