import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { MaintenanceModule } from '../maintenance/maintenance.module';
import { HealthController } from './health.controller';
import { HealthService } from './health.service';
import { LifecycleState } from './lifecycle-state';

@Module({
  imports: [TerminusModule.forRoot({ logger: false }), MaintenanceModule],
  controllers: [HealthController],
  providers: [HealthService, LifecycleState],
  exports: [LifecycleState],
})
export class HealthModule {}
