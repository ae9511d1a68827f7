import { AppError } from '../common/app-error';

export const MISSING_TOKEN = () =>
  new AppError('unauthorized', 'Authentication is required: send an Authorization: Bearer <token> header.');
/** One answer for every bad token: the client learns nothing about why. */
export const INVALID_TOKEN = () => new AppError('invalid_token', 'The bearer token is invalid, expired or revoked.');
