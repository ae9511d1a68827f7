import { Body, Controller, Get, Put } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal, Roles } from '../auth/decorators';
import type { Principal } from '../auth/principal';
import { NoQuery } from '../common/validation';
import { ApiDataResponse } from '../openapi/decorators';
import { MaintenanceChangeDto, MaintenanceStateSchema } from './maintenance.dto';
import { maintenanceView } from './maintenance.service';
import { AllowedWhileReadOnly } from './read-only';
import { WriteFreeze } from './write-freeze';

/** The write freeze switch (contract §15); on top with the app, as it needs auth's decorators. */
@ApiTags('maintenance')
@Controller('admin/maintenance')
export class MaintenanceController {
  constructor(private readonly freeze: WriteFreeze) {}

  @Get()
  @ApiOperation({ summary: "This instance's view of the write freeze (re-read from the database every second)" })
  @ApiDataResponse(MaintenanceStateSchema)
  @Roles('admin', 'operator')
  get(@NoQuery() _query: undefined) {
    return { data: maintenanceView(this.freeze.current) };
  }

  @Put()
  @ApiOperation({
    summary: 'Freeze or unfreeze every write, on every instance within 2 s (this one at once)',
    description:
      'While read-only every endpoint that changes data answers 503 `read_only` with Retry-After; reads, login, ' +
      'health, metrics and this endpoint keep working; workers pause between chunks. Audit logged.',
  })
  @ApiDataResponse(MaintenanceStateSchema)
  @Roles('admin')
  @AllowedWhileReadOnly()
  async change(
    @NoQuery() _query: undefined,
    @Body() body: MaintenanceChangeDto,
    @CurrentPrincipal() principal: Principal,
  ) {
    const state = await this.freeze.change(principal, { readOnly: body.read_only, reason: body.reason });
    return { data: maintenanceView(state) };
  }
}
