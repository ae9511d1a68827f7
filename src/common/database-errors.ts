/** Driver error codes that mean "cannot reach the database", as opposed to a bad query. */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EPIPE',
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ER_CON_COUNT_ERROR',
  'ER_SERVER_SHUTDOWN',
  'ER_SERVER_GONE_ERROR',
  'CR_SERVER_GONE_ERROR',
  'CR_CONNECTION_ERROR',
  // The embedded database's file is locked by another process past the busy timeout (and the
  // unit of work's bounded retries): a 503 to retry, like an unreachable server.
  'SQLITE_BUSY',
  'SQLITE_BUSY_SNAPSHOT',
  'SQLITE_BUSY_RECOVERY',
  'SQLITE_BUSY_TIMEOUT',
  'SQLITE_LOCKED',
  'SQLITE_LOCKED_SHAREDCACHE',
]);

export function isDatabaseUnavailable(error: unknown): boolean {
  for (let current: unknown = error, depth = 0; current && depth < 4; depth++) {
    const candidate = current as { code?: unknown; driverError?: unknown; message?: unknown; name?: unknown };
    if (typeof candidate.code === 'string' && UNAVAILABLE_CODES.has(candidate.code)) return true;
    if (candidate.name === 'ConnectionIsNotSetError') return true;
    if (
      typeof candidate.message === 'string' &&
      /Pool is closed|connection is in closed state/i.test(candidate.message)
    ) {
      return true;
    }
    current = candidate.driverError ?? (candidate as { cause?: unknown }).cause;
  }
  return false;
}
