import { AppError } from '../common/app-error';
import { ERROR_CATALOGUE, type ErrorCode } from '../common/error-codes';
import {
  BalanceOutOfRangeError,
  ConfigInactiveError,
  ConfigInUseError,
  DuplicateMembershipTypeError,
  IdempotencyKeyInUseError,
  IdempotencyKeyMismatchError,
  InsufficientQuotaError,
  MemberInactiveError,
  MembersExistError,
  NegativeBalanceError,
} from '../quota/quota.errors';
import { ApiProblems } from './problems';

describe('the error catalogue and the error classes', () => {
  it.each<[ErrorCode, AppError]>([
    ['insufficient_quota', new InsufficientQuotaError(1, 2, 'regular')],
    ['member_inactive', new MemberInactiveError('regular')],
    ['config_inactive', new ConfigInactiveError('regular')],
    ['negative_balance', new NegativeBalanceError(-1)],
    ['balance_out_of_range', new BalanceOutOfRangeError(1)],
    ['idempotency_key_mismatch', new IdempotencyKeyMismatchError()],
    ['idempotency_key_in_use', new IdempotencyKeyInUseError()],
    ['duplicate_membership_type', new DuplicateMembershipTypeError('regular')],
    ['config_in_use', new ConfigInUseError('regular')],
    ['member_exists', new MembersExistError(['a'])],
  ])('%s answers the status the catalogue gives it', (code, error) => {
    expect(error.code).toBe(code);
    expect(error.status).toBe(ERROR_CATALOGUE[code].status);
  });

  it('refuses a code it does not know, so a typo cannot document a status that never happens', () => {
    // @ts-expect-error ErrorCode is a closed union: the compiler refuses the typo first.
    expect(() => ApiProblems('insuficient_quota')).toThrow(/unknown problem code/);
  });
});
