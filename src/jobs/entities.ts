import type { EntityClass } from '../database/entity-class';

export const JOBS_ENTITIES: EntityClass[] = [];
