import { AppError } from '../common/app-error';
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
import { ApiProblems, PROBLEM_STATUS } from './problems';

describe('PROBLEM_STATUS', () => {
  it.each<[string, AppError]>([
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
  ])('documents %s with the status the error class answers', (code, error) => {
    expect(error.code).toBe(code);
    expect(PROBLEM_STATUS[code]).toBe(error.status);
  });

  it('refuses a code it does not know, so a typo cannot document a status that never happens', () => {
    expect(() => ApiProblems('insuficient_quota')).toThrow(/unknown problem code/);
  });
});
