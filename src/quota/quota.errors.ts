import { AppError, ValidationFailedError } from '../common/app-error';

/** The quota module's refusals; the problem-details filter renders them, with these statuses. */
export class InsufficientQuotaError extends AppError {
  constructor(
    readonly balance: number,
    readonly requested: number,
    /** For metric labels and quota headers; not part of the answer. */
    readonly membershipType: string,
    headers?: Readonly<Record<string, string>>,
  ) {
    super('insufficient_quota', `The member has ${balance} left; ${requested} was requested.`, {
      extensions: { balance, requested },
      headers,
    });
  }
}

export class MemberInactiveError extends AppError {
  constructor(readonly membershipType: string) {
    super('member_inactive', 'The member is inactive; its quota cannot be used.');
  }
}

export class ConfigInactiveError extends AppError {
  constructor(readonly membershipType: string) {
    super('config_inactive', `The quota config of membership type "${membershipType}" is inactive.`, {
      extensions: { membership_type: membershipType },
    });
  }
}

export class NegativeBalanceError extends AppError {
  constructor(balance: number) {
    super('negative_balance', `The change would take the balance (${balance}) below 0.`, {
      extensions: { balance },
    });
  }
}

export class BalanceOutOfRangeError extends AppError {
  constructor(balance: number) {
    super('balance_out_of_range', `The change would take the balance (${balance}) above 2147483647.`, {
      extensions: { balance },
    });
  }
}

/** A new hold that would make the member's open holds keep more than 2^31-1 units (the range of quota_held). */
export class HeldOutOfRangeError extends ValidationFailedError {
  constructor() {
    super([{ field: 'amount', message: "the member's open holds would keep more than 2147483647 units" }]);
  }
}

export class IdempotencyKeyMismatchError extends AppError {
  constructor() {
    super(
      'idempotency_key_mismatch',
      'This Idempotency-Key was already used with a different request; use a new key for a new request.',
    );
  }
}

export class IdempotencyKeyInUseError extends AppError {
  constructor() {
    super('idempotency_key_in_use', 'A request with this Idempotency-Key is still being processed; retry shortly.', {
      retryAfterSeconds: 1,
    });
  }
}

export class DuplicateMembershipTypeError extends AppError {
  constructor(membershipType: string) {
    super('duplicate_membership_type', `A quota config for membership type "${membershipType}" already exists.`, {
      extensions: { membership_type: membershipType },
    });
  }
}

export class ConfigInUseError extends AppError {
  constructor(membershipType: string) {
    super('config_in_use', `Members still have membership type "${membershipType}"; move them first.`, {
      extensions: { membership_type: membershipType },
    });
  }
}

export class MembersExistError extends AppError {
  constructor(externalIds: readonly string[]) {
    super('member_exists', `${externalIds.length} member(s) with these external ids already exist.`, {
      extensions: { external_ids: externalIds },
    });
  }
}

export class UnknownMembershipTypeError extends ValidationFailedError {
  constructor(field: string, membershipType: string) {
    super([{ field, message: `no quota config exists for membership type "${membershipType}"` }]);
  }
}

export class HoldSettledError extends AppError {
  constructor(status: string) {
    super('hold_settled', `The hold is already ${status}.`, { extensions: { hold_status: status } });
  }
}

export class HoldExpiredError extends AppError {
  constructor() {
    super('hold_expired', 'The hold expired before it was settled; its units were given back to the member.');
  }
}
