import type { EntityClass } from '../database/entity-class';
import { QuotaOperation } from './operation.entity';

export const JOBS_ENTITIES: EntityClass[] = [QuotaOperation];
