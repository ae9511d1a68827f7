import type { ValueTransformer } from 'typeorm';

/** BIGINT ids as strings on every driver (SQLite hands back numbers, MySQL strings). */
export const bigintString: ValueTransformer = {
  to: (value: unknown) => value,
  from: (value: unknown) => (typeof value === 'number' || typeof value === 'bigint' ? String(value) : value),
};
