import { Module } from '@nestjs/common';
import { DatabaseMetrics, QuotaDatabase } from './database';

/** The session API over the database (QuotaDatabase) for every module that sends SQL or writes. */
@Module({
  providers: [DatabaseMetrics, QuotaDatabase],
  exports: [QuotaDatabase],
})
export class DatabaseModule {}
