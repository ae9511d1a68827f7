import type { EntityClass } from '../database/entity-class';
export const AUTH_ENTITIES: EntityClass[] = [];
