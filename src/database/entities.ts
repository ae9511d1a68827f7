import { AUTH_ENTITIES } from '../auth/entities';
import { QUOTA_ENTITIES } from '../quota/entities';

export const ENTITIES = [...QUOTA_ENTITIES, ...AUTH_ENTITIES];
