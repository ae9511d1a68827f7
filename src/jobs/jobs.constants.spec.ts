import { operationJobId, parseRunOperationPayload } from './jobs.constants';

describe('job payloads', () => {
  it('accepts an operation id and names its job deterministically', () => {
    expect(parseRunOperationPayload({ operationId: '42' }).operationId).toBe('42');
    expect(operationJobId('42')).toBe('op-42');
  });

  it.each([
    undefined,
    {},
    { operationId: 42 },
    { operationId: '0' },
    { operationId: 'x' },
    { operationId: '1', extra: 1 },
  ])('refuses %j', (data) => {
    expect(() => parseRunOperationPayload(data)).toThrow(/invalid run-operation payload/);
  });
});
