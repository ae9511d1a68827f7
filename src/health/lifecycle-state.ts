import { Injectable } from '@nestjs/common';

/** Set on SIGTERM so readiness fails at once while in-flight work drains. */
@Injectable()
export class LifecycleState {
  private shuttingDownSince: Date | null = null;

  beginShutdown(): void {
    this.shuttingDownSince ??= new Date();
  }

  get isShuttingDown(): boolean {
    return this.shuttingDownSince !== null;
  }
}
