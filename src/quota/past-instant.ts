import { AppError, ValidationFailedError } from '../common/app-error';

/**
 * An instant the ledger can answer for: given, and not after now. The ledger of a future instant
 * is not written yet, so any answer would be a guess.
 */
export function pastInstant(field: string, value: string, now: Date): Date {
  const instant = new Date(value);
  if (Number.isNaN(instant.getTime())) {
    throw new ValidationFailedError([{ field, message: `${field} must be an ISO-8601 timestamp` }]);
  }
  if (instant > now) throw new ValidationFailedError([{ field, message: `${field} must not be in the future` }]);
  return instant;
}

/** The error for an instant before the member's first ledger row: it had no balance yet. */
export function noBalanceYet(): AppError {
  return new AppError('not_found', 'The member had no balance at that instant (it is before its first ledger row).');
}
