import { SchedulerRegistry } from '@nestjs/schedule';
import { startTestApp } from '../support/test-app';

/** Periodic work is registered with Nest's scheduler by name, on the roles that run it, and stops at shutdown. */
describe('scheduled periodic work', () => {
  const scheduled = (registry: SchedulerRegistry) => [...registry.getIntervals()].sort();

  it('APP_ROLE=all runs every periodic job, at the configured periods, and stops them all on close', async () => {
    const t = await startTestApp({
      env: {
        APP_ROLE: 'all',
        QUOTA_ANALYTICS_INTERVAL_MS: '250',
        JOBS_SWEEP_INTERVAL_MS: '300',
        QUOTA_HOLD_EXPIRY_INTERVAL_MS: '350',
        MAINTENANCE_POLL_INTERVAL_MS: '400',
        WEBHOOK_POLL_INTERVAL_MS: '450',
      },
    });
    const registry = t.app.get(SchedulerRegistry);
    try {
      expect(scheduled(registry)).toEqual(
        [
          'analytics-tail',
          'anomaly-retention',
          'hold-expiry',
          'idempotency-purge',
          'maintenance-poll',
          'operations-sweep',
          'webhook-delivery',
          'webhook-retention',
          // With Redis the reset tick is a repeatable BullMQ job instead.
          ...(t.config.redis ? [] : ['reset-tick']),
        ].sort(),
      );
      // The period comes from the environment, not from a constant.
      const tail = registry.getInterval<{ _idleTimeout?: number }>('analytics-tail');
      expect(tail._idleTimeout).toBe(250);
      const sweep = registry.getInterval<{ _idleTimeout?: number }>('operations-sweep');
      expect(sweep._idleTimeout).toBe(300);
      const expiry = registry.getInterval<{ _idleTimeout?: number }>('hold-expiry');
      expect(expiry._idleTimeout).toBe(350);
      const poll = registry.getInterval<{ _idleTimeout?: number }>('maintenance-poll');
      expect(poll._idleTimeout).toBe(400);
      const deliveries = registry.getInterval<{ _idleTimeout?: number }>('webhook-delivery');
      expect(deliveries._idleTimeout).toBe(450);
    } finally {
      await t.close();
    }
    expect(scheduled(registry)).toEqual([]);
  });

  it('APP_ROLE=api runs only the idempotency purge, the hold expiry and the write freeze poll; background work is left to workers', async () => {
    const t = await startTestApp({ env: { APP_ROLE: 'api' } });
    try {
      // Holds expire on every instance, so they come back even while no worker runs; every instance
      // obeys the write freeze.
      expect(scheduled(t.app.get(SchedulerRegistry))).toEqual(['hold-expiry', 'idempotency-purge', 'maintenance-poll']);
    } finally {
      await t.close();
    }
  });
});
