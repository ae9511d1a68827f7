import type { EntityClass } from '../database/entity-class';

export const ANALYTICS_ENTITIES: EntityClass[] = [];
