import { Injectable } from '@nestjs/common';
import { Counter } from 'prom-client';
import { MetricsRegistry } from '../metrics/metrics.module';

export type FailedLoginReason = 'unknown_email' | 'wrong_password' | 'inactive' | 'locked';

@Injectable()
export class AuthMetrics {
  readonly failedLogins: Counter<'reason'>;
  readonly lockouts: Counter;

  constructor(registry: MetricsRegistry) {
    this.failedLogins = new Counter({
      name: 'quota_failed_logins_total',
      help: 'Refused login attempts, by reason.',
      labelNames: ['reason'],
      registers: [registry],
    });
    this.lockouts = new Counter({
      name: 'quota_account_lockouts_total',
      help: 'Accounts locked after too many failed logins.',
      registers: [registry],
    });
  }
}
