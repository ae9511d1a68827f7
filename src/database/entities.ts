import { ANALYTICS_ENTITIES } from '../analytics/entities';
import { AUTH_ENTITIES } from '../auth/entities';
import { JOBS_ENTITIES } from '../jobs/entities';
import { QUOTA_ENTITIES } from '../quota/entities';

export const ENTITIES = [...QUOTA_ENTITIES, ...AUTH_ENTITIES, ...JOBS_ENTITIES, ...ANALYTICS_ENTITIES];
