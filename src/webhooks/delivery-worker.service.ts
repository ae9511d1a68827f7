import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import {
  Inject,
  Injectable,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import type { Logger } from 'pino';
import { ROOT_LOGGER } from '../common/logger.token';
import { scheduleEvery, stopScheduled } from '../common/periodic';
import { WriteFreeze } from '../maintenance/write-freeze';
import { AppConfig } from '../config/app-config';
import { QuotaDatabase } from '../database/database';
import { DeliveryQueueRepository, type AttemptResult, type ClaimedDelivery } from './delivery-queue.repository';
import { retryDelayMs } from './retry-schedule';
import { signAttempt } from './signing';
import { WebhookSender, type SendOutcome } from './webhook-sender';
import { WebhooksMetrics } from './webhooks.metrics';

export const WEBHOOK_DELIVERY_INTERVAL = 'webhook-delivery';

/** Attempts one worker has in flight at most, so one hanging receiver does not hold up the others. */
export const DELIVERY_CONCURRENCY = 8;

/** Due deliveries read per free slot: workers reading the same head of the queue still find some left to claim. */
const CANDIDATES_PER_SLOT = 4;

/**
 * How long a lease outlives the attempt's own time-out: room to write the result. A worker that
 * died holding a lease leaves it to lapse, and another worker sends the delivery again then.
 */
export function leaseMs(timeoutMs: number): number {
  return 2 * timeoutMs + 1000;
}

/** This process among the workers, as claimed_by shows it (host, process, and a random part for restarts). */
function instanceName(): string {
  return `${hostname().slice(0, 32)}:${process.pid}:${randomBytes(3).toString('hex')}`;
}

/**
 * Sends webhook deliveries (contract §12) on APP_ROLE worker and all, every WEBHOOK_POLL_INTERVAL_MS:
 * claims due deliveries in a short transaction (a lease of leaseMs per delivery), sends them
 * outside any transaction, up to DELIVERY_CONCURRENCY at a time, and records each result under
 * its lease. At least once: an attempt whose worker died is sent again, with the same webhook-id,
 * once its lease has lapsed. At shutdown it stops claiming and waits for the attempts in flight
 * (each bounded by WEBHOOK_TIMEOUT_MS) to record their results.
 */
@Injectable()
export class DeliveryWorker implements OnApplicationBootstrap, OnModuleDestroy, BeforeApplicationShutdown {
  private readonly instance = instanceName();
  private claims = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private stopped = false;
  private polling: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: QuotaDatabase,
    private readonly queue: DeliveryQueueRepository,
    private readonly sender: WebhookSender,
    private readonly metrics: WebhooksMetrics,
    private readonly config: AppConfig,
    private readonly freeze: WriteFreeze,
    private readonly scheduler: SchedulerRegistry,
    @Inject(ROOT_LOGGER) private readonly logger: Logger,
  ) {}

  onApplicationBootstrap(): void {
    if (this.config.role === 'api') return;
    scheduleEvery(this.scheduler, WEBHOOK_DELIVERY_INTERVAL, this.config.webhooks.pollIntervalMs, () => {
      this.polling = this.pollQuietly();
      return this.polling;
    });
  }

  /** The first of the shutdown hooks: nothing new is claimed from here on. */
  onModuleDestroy(): void {
    this.stopped = true;
    stopScheduled(this.scheduler, WEBHOOK_DELIVERY_INTERVAL);
  }

  /** Before the database closes: the attempts in flight record their results. */
  async beforeApplicationShutdown(): Promise<void> {
    this.onModuleDestroy();
    // A poll under way may still start what it claimed; then those attempts finish and record.
    await this.polling;
    await this.idle();
  }

  /** Claims what is due, up to the free slots, and starts sending it; returns how many it started. */
  async poll(now = new Date()): Promise<number> {
    // While writes are frozen nothing is claimed (a claim and its result are writes); attempts in
    // flight still finish and record theirs.
    if (this.stopped || this.freeze.isReadOnly()) return 0;
    const free = DELIVERY_CONCURRENCY - this.inFlight.size;
    if (free <= 0) return 0;
    const candidates = await this.db.read((s) => this.queue.due(s, now, free * CANDIDATES_PER_SLOT));
    if (candidates.length === 0) return 0;
    const token = `${this.instance}/${++this.claims}`;
    const leaseUntil = new Date(now.getTime() + leaseMs(this.config.webhooks.timeoutMs));
    const claimed = await this.db.transaction((s) => this.queue.claim(s, candidates, free, now, leaseUntil, token));
    for (const delivery of claimed) {
      const attempt: Promise<void> = this.attempt(delivery, token)
        .catch((err: unknown) =>
          // The lease lapses and another poll sends it again; nothing is lost.
          this.logger.error({ err, deliveryId: delivery.id }, 'a webhook delivery result could not be recorded'),
        )
        .finally(() => this.inFlight.delete(attempt));
      this.inFlight.add(attempt);
    }
    return claimed.length;
  }

  /** The attempts in flight (for shutdown and tests). */
  async idle(): Promise<void> {
    await Promise.all([...this.inFlight]);
  }

  private async attempt(delivery: ClaimedDelivery, token: string): Promise<void> {
    const outcome = await this.send(delivery);
    const at = new Date();
    const result = this.resultOf(delivery, outcome, at);
    const recorded = await this.db.transaction((s) => this.queue.recordResult(s, delivery.id, token, result));
    if (!recorded) {
      this.logger.warn({ deliveryId: delivery.id }, 'a webhook delivery lease lapsed before its result was recorded');
      return;
    }
    this.metrics.deliveries.inc({
      result: result.status === 'delivered' ? 'delivered' : result.status === 'failed' ? 'failed' : 'retrying',
    });
    if (result.status === 'failed') {
      this.logger.warn(
        { deliveryId: delivery.id, attempts: delivery.attempt, error: outcome.error },
        'a webhook delivery failed for good',
      );
    }
  }

  private async send(delivery: ClaimedDelivery): Promise<SendOutcome> {
    try {
      const headers = signAttempt(delivery.eventUid, delivery.body, delivery.secrets, new Date());
      return await this.sender.send({ url: delivery.url, body: delivery.body, headers: { ...headers } });
    } catch (err) {
      // Only signing can throw here (a stored secret that does not decode); the sender never does.
      this.logger.error({ err, deliveryId: delivery.id }, 'a webhook delivery could not be signed');
      return { delivered: false, statusCode: null, error: 'the signing secret could not be used' };
    }
  }

  private resultOf(delivery: ClaimedDelivery, outcome: SendOutcome, at: Date): AttemptResult {
    if (outcome.delivered && outcome.statusCode !== null) {
      return { status: 'delivered', statusCode: outcome.statusCode, at };
    }
    const delay = retryDelayMs(delivery.attempt, this.config.webhooks.retryBaseMs);
    return {
      status: delay === null ? 'failed' : 'pending',
      statusCode: outcome.statusCode,
      error: outcome.error ?? 'failed',
      nextAttemptAt: delay === null ? null : new Date(at.getTime() + delay),
      at,
    };
  }

  private async pollQuietly(): Promise<void> {
    try {
      await this.poll();
    } catch (err) {
      this.logger.warn({ err }, 'looking for due webhook deliveries failed; the next poll retries');
    }
  }
}
