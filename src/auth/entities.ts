import { AuditLogEntry } from '../audit/audit-log.entity';
import { User } from './user.entity';

export const AUTH_ENTITIES = [User, AuditLogEntry];
