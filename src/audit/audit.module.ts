import { Module } from '@nestjs/common';
import { AuditService } from './audit.service';

/** The admin audit log: who changed which config, user or member, with before and after. */
@Module({
  providers: [AuditService],
  exports: [AuditService],
})
export class AuditModule {}
