import type { SchedulerRegistry } from '@nestjs/schedule';

/**
 * Periodic work whose period comes from configuration, registered by name with Nest's scheduler
 * (`@nestjs/schedule`): the scheduler owns the interval and clears it when the application shuts
 * down. A tick that comes while the previous run is still going is skipped, so runs never overlap.
 * `work` handles its own errors; a rejection that gets through is dropped, never left unhandled.
 */
export function scheduleEvery(
  registry: SchedulerRegistry,
  name: string,
  periodMs: number,
  work: () => Promise<unknown>,
): void {
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void work()
      .catch(() => undefined)
      .finally(() => (busy = false));
  }, periodMs);
  // A pending tick never keeps a process (or a test run) alive on its own.
  timer.unref();
  registry.addInterval(name, timer);
}

/** Stops a named interval now (no further ticks); a no-op when it was never scheduled or is gone. */
export function stopScheduled(registry: SchedulerRegistry, name: string): void {
  if (registry.doesExist('interval', name)) registry.deleteInterval(name);
}
