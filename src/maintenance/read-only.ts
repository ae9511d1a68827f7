import { SetMetadata } from '@nestjs/common';

export const ALLOWED_WHILE_READ_ONLY_KEY = 'maintenance:allowed-while-read-only';

/**
 * A route that changes data yet keeps working during a write freeze: logging in (and its failed
 * login counters), and the switch itself. Every other route whose method is not a read is refused.
 */
export const AllowedWhileReadOnly = () => SetMetadata(ALLOWED_WHILE_READ_ONLY_KEY, true);

const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Whether a route of this method counts as a write. The rule is the method, not a list of routes,
 * so a route added later is frozen without anyone remembering to list it.
 */
export function isWriteMethod(method: string): boolean {
  return !READ_METHODS.has(method.toUpperCase());
}
