import { Module } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module';
import { DatabaseModule } from '../database/database.module';
import { MaintenanceRepository } from './maintenance.repository';
import { MaintenanceService } from './maintenance.service';
import { WriteFreeze } from './write-freeze';

/**
 * The write freeze (contract §15): the switch, and this instance's in-memory view of it that the
 * access guard and every background writer consult. The HTTP endpoints sit on top, with the app
 * (maintenance.controller.ts), as they need auth's decorators.
 */
@Module({
  imports: [DatabaseModule, AuditModule],
  providers: [MaintenanceRepository, MaintenanceService, WriteFreeze],
  exports: [WriteFreeze],
})
export class MaintenanceModule {}
