import { isDatabaseUnavailable } from '../common/database-errors';
import { dbErrorKind, readTimestamp, sqlTimestamp } from './sql-session';

describe('database session helpers', () => {
  it('classifies driver errors of both drivers, wrapped by TypeORM or not', () => {
    expect(dbErrorKind({ driverError: { errno: 1062 } })).toBe('duplicate');
    expect(dbErrorKind({ errno: 1213 })).toBe('deadlock');
    expect(dbErrorKind({ errno: 1205 })).toBe('lock_timeout');
    expect(dbErrorKind({ errno: 1451 })).toBe('foreign_key');
    expect(dbErrorKind({ errno: 4025 })).toBe('check');
    expect(dbErrorKind({ driverError: { code: 'SQLITE_CONSTRAINT_PRIMARYKEY' } })).toBe('duplicate');
    expect(dbErrorKind({ code: 'SQLITE_CONSTRAINT_FOREIGNKEY' })).toBe('foreign_key');
    expect(dbErrorKind({ code: 'SQLITE_BUSY' })).toBe('busy');
    expect(dbErrorKind({ driverError: { code: 'SQLITE_BUSY_SNAPSHOT' } })).toBe('busy');
    expect(dbErrorKind(new Error('other'))).toBeUndefined();
    expect(dbErrorKind(undefined)).toBeUndefined();
  });

  it('answers a database file still busy after the retries as unavailable (503), not as a server error', () => {
    for (const code of ['SQLITE_BUSY', 'SQLITE_BUSY_SNAPSHOT', 'SQLITE_BUSY_TIMEOUT', 'SQLITE_LOCKED']) {
      expect(isDatabaseUnavailable({ driverError: { code } })).toBe(true);
    }
    expect(isDatabaseUnavailable({ driverError: { code: 'SQLITE_CONSTRAINT_UNIQUE' } })).toBe(false);
  });

  it('writes and reads UTC timestamps with milliseconds', () => {
    const date = new Date('2026-11-23T10:20:30.456Z');
    expect(sqlTimestamp(date)).toBe('2026-11-23 10:20:30.456');
    expect(readTimestamp('2026-11-23 10:20:30.456').toISOString()).toBe(date.toISOString());
    expect(readTimestamp(date)).toBe(date);
    expect(() => readTimestamp(5)).toThrow();
  });
});
