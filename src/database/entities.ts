import { Member } from '../quota/entities/member.entity';
import { QuotaConfig } from '../quota/entities/quota-config.entity';
import { QuotaHistory } from '../quota/entities/quota-history.entity';

export const ENTITIES = [QuotaConfig, Member, QuotaHistory];
