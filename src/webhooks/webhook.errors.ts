import { AppError, ValidationFailedError } from '../common/app-error';
import type { DestinationRefusal } from './destination-policy';

/** A destination the policy refuses, told as a validation failure of the `url` field, in our own words. */
export class WebhookUrlRefusedError extends ValidationFailedError {
  constructor(reason: DestinationRefusal) {
    super([{ field: 'url', message: `url is not accepted: ${reason}` }]);
  }
}

export class DeliveryPendingError extends AppError {
  constructor(deliveryId: string) {
    super(
      'delivery_pending',
      'This event already has a pending delivery to this webhook; it is retried by itself, or wait until it ends.',
      { extensions: { delivery_id: deliveryId } },
    );
  }
}

export class WebhookInactiveError extends AppError {
  constructor() {
    super('webhook_inactive', 'The webhook is inactive and receives nothing; activate it first (is_active: true).');
  }
}
