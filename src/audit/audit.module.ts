import { Global, Module, type MiddlewareConsumer, type NestModule } from '@nestjs/common';
import { AuditService } from './audit.service';
import { RequestContextMiddleware } from './request-context';

/** The admin audit log: who changed which config, user or member, with before and after. */
@Global()
@Module({
  providers: [AuditService],
  exports: [AuditService],
})
export class AuditModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(RequestContextMiddleware).forRoutes('{*path}');
  }
}
