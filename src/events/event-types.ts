/**
 * The events webhooks carry (contract §12). The list is also the migration's check constraint
 * (1765300000000-Webhooks); a new type needs both.
 */
export const EVENT_TYPES = [
  'anomaly.detected',
  'quota.threshold_reached',
  'operation.completed',
  'operation.failed',
  'hold.expired',
  'webhook.test',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

export function isEventType(value: unknown): value is EventType {
  return typeof value === 'string' && (EVENT_TYPES as readonly string[]).includes(value);
}

/** An event as its producer describes it. */
export interface NewEvent {
  readonly type: EventType;
  /** The `data` object of the body: JSON values only, in the API's snake_case. */
  readonly data: Record<string, unknown>;
  /** What caused it, `<kind>:<id>` (anomaly:12, operation:7, hold:3, history:991, webhook:2). */
  readonly source: string | null;
  /** When it happened; the body's `timestamp`. */
  readonly at: Date;
}

/** The body every delivery of an event sends, byte for byte: `{"type","timestamp","data"}`. */
export function eventBody(event: NewEvent): string {
  return JSON.stringify({ type: event.type, timestamp: event.at.toISOString(), data: event.data });
}
