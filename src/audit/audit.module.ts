import { Global, Module } from '@nestjs/common';

/** The admin audit log: who changed which config, user or member, with before and after. */
@Global()
@Module({})
export class AuditModule {}
