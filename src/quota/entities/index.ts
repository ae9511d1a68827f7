import { IdempotencyKey } from './idempotency-key.entity';
import { Member } from './member.entity';
import { QuotaConfig } from './quota-config.entity';
import { QuotaHistory } from './quota-history.entity';
import { QuotaHold } from './quota-hold.entity';

export const QUOTA_ENTITIES = [QuotaConfig, Member, QuotaHistory, IdempotencyKey, QuotaHold];
