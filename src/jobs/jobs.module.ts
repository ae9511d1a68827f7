import { Module } from '@nestjs/common';

/** Background operations: bulk adjustments, config propagation and periodic resets. */
@Module({})
export class JobsModule {}
