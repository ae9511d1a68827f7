import { Module } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module';
import { BalancesInTimeRepository } from './balances-in-time.repository';
import { DatabaseModule } from '../database/database.module';
import { EventsModule } from '../events/events.module';
import { MaintenanceModule } from '../maintenance/maintenance.module';
import { AdminQuotaController } from './admin-quota.controller';
import { ConfigCache } from './config-cache';
import { ConfigsController } from './configs.controller';
import { ConfigsRepository } from './configs.repository';
import { ConfigsService } from './configs.service';
import { ConsumptionController } from './consumption.controller';
import { HistoryRepository } from './history.repository';
import { HoldExpiryService } from './hold-expiry.service';
import { HoldsController } from './holds.controller';
import { HoldsRepository } from './holds.repository';
import { HoldsService } from './holds.service';
import { HistoryService } from './history.service';
import { IdempotencyRepository } from './idempotency.repository';
import { IdempotencyService } from './idempotency.service';
import { LedgerBulkRepository } from './ledger-bulk.repository';
import { LedgerBulkService, OperationRecorder } from './ledger-bulk.service';
import { LedgerRepository } from './ledger.repository';
import { LedgerService } from './ledger.service';
import { MembersController } from './members.controller';
import { MembersRepository } from './members.repository';
import { MembersService } from './members.service';
import { OperationRecordsRepository } from './operation-records.repository';
import { QuotaMetrics } from './quota.metrics';
import { QuotaService } from './quota.service';

@Module({
  imports: [DatabaseModule, AuditModule, EventsModule, MaintenanceModule],
  // Express tries routes in the order they were registered: the consumption routes, which carry
  // the traffic, come first.
  controllers: [ConsumptionController, HoldsController, ConfigsController, MembersController, AdminQuotaController],
  providers: [
    QuotaMetrics,
    ConfigsRepository,
    ConfigCache,
    LedgerRepository,
    LedgerService,
    LedgerBulkRepository,
    LedgerBulkService,
    OperationRecordsRepository,
    OperationRecorder,
    IdempotencyRepository,
    IdempotencyService,
    ConfigsService,
    MembersRepository,
    MembersService,
    QuotaService,
    HistoryRepository,
    HistoryService,
    HoldsRepository,
    HoldsService,
    HoldExpiryService,
    BalancesInTimeRepository,
  ],
  exports: [
    LedgerService,
    LedgerBulkService,
    OperationRecorder,
    DatabaseModule,
    // The write freeze, for the background writers of the modules built on this one.
    MaintenanceModule,
    QuotaService,
    MembersService,
    ConfigsService,
    MembersRepository,
    BalancesInTimeRepository,
  ],
})
export class QuotaModule {}
