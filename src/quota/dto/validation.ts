import { Transform } from 'class-transformer';
import { ValidateIf } from 'class-validator';

export const INT32_MAX = 2_147_483_647;
export { ID_PATTERN } from '../../common/id-param.pipe';
export const MEMBERSHIP_TYPE_PATTERN = /^[a-z0-9][a-z0-9_-]{0,31}$/;
/** The host platform's member key: printable ASCII without spaces. */
export const EXTERNAL_ID_PATTERN = /^[\x21-\x7e]{1,191}$/;
export const NOTE_MAX_LENGTH = 500;

/**
 * Skips validation only when the field is absent; unlike @IsOptional, an explicit null is
 * validated (and refused) for fields that cannot be null.
 */
export const Absentable = () => ValidateIf((_object, value) => value !== undefined);

/** Query strings are text: only plain base-10 integers become numbers, anything else stays and fails @IsInt. */
export const QueryInt = () =>
  Transform(({ value }: { value: unknown }) =>
    typeof value === 'string' && /^-?\d{1,12}$/.test(value) ? Number(value) : value,
  );

/** "true" and "false" only; anything else stays a string and fails @IsBoolean. */
export const QueryBoolean = () =>
  Transform(({ value }: { value: unknown }) => (value === 'true' ? true : value === 'false' ? false : value));
