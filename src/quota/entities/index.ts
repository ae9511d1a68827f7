import type { EntityClass } from '../../database/entity-class';
import { Member } from './member.entity';
import { QuotaConfig } from './quota-config.entity';
import { QuotaHistory } from './quota-history.entity';

export const QUOTA_ENTITIES: EntityClass[] = [QuotaConfig, Member, QuotaHistory];
