import { ApiProperty, ApiSchema } from '@nestjs/swagger';
import { EVENT_TYPES, type EventType } from '../events/event-types';
import { ID, INT32, TIMESTAMP } from '../openapi/schemas';
import {
  DELIVERY_STATUSES,
  WEBHOOK_DESCRIPTION_MAX_LENGTH,
  WEBHOOK_URL_MAX_LENGTH,
  type DeliveryStatus,
} from './dto/webhook.dto';

/** The webhooks' response bodies, for the OpenAPI document (see openapi/schemas.ts). */
@ApiSchema({
  name: 'Webhook',
  description: 'A webhook subscription: where events of the listed types are sent. The secret is never shown here.',
})
export class WebhookSchema {
  @ApiProperty(ID) id!: string;
  @ApiProperty({ type: String, maxLength: WEBHOOK_URL_MAX_LENGTH, example: 'https://hooks.example.com/quota' })
  url!: string;
  @ApiProperty({ enum: EVENT_TYPES, enumName: 'WebhookEventType', isArray: true, minItems: 1 })
  events!: EventType[];
  @ApiProperty({ type: String, nullable: true, maxLength: WEBHOOK_DESCRIPTION_MAX_LENGTH })
  description!: string | null;
  @ApiProperty({ type: Boolean, description: 'An inactive webhook receives nothing (its pending deliveries wait).' })
  is_active!: boolean;
  @ApiProperty({
    ...TIMESTAMP,
    nullable: true,
    description: 'Until when the secret before the last rotation still signs too; null when it no longer does.',
  })
  previous_secret_expires_at!: string | null;
  @ApiProperty(TIMESTAMP) created_at!: string;
  @ApiProperty(TIMESTAMP) updated_at!: string;
}

@ApiSchema({
  name: 'WebhookWithSecret',
  description: 'A webhook with its signing secret: shown only when it is created and when the secret is rotated.',
})
export class WebhookWithSecretSchema extends WebhookSchema {
  @ApiProperty({
    type: String,
    pattern: '^whsec_[A-Za-z0-9+/]{43}=$',
    description:
      'The Standard Webhooks signing secret: `whsec_` + base64 of 32 random bytes. Keep it; it is not shown again.',
  })
  secret!: string;
}

@ApiSchema({
  name: 'WebhookDelivery',
  description: 'One event sent (or to be sent) to one webhook, with its attempts so far.',
})
export class WebhookDeliverySchema {
  @ApiProperty(ID) id!: string;
  @ApiProperty({
    type: String,
    example: 'msg_2bH1vQ8kR0x9yT3uW5zA7cD4',
    description: 'The `webhook-id` header: the same on every attempt and every redelivery of the event.',
  })
  event_id!: string;
  @ApiProperty({ enum: EVENT_TYPES, enumName: 'WebhookEventType' }) event_type!: EventType;
  @ApiProperty({ enum: DELIVERY_STATUSES, enumName: 'WebhookDeliveryStatus' }) status!: DeliveryStatus;
  @ApiProperty({ ...INT32, minimum: 0, description: 'Attempts made so far.' }) attempts!: number;
  @ApiProperty({ ...INT32, nullable: true, description: "The receiver's HTTP status at the last attempt." })
  last_status_code!: number | null;
  @ApiProperty({
    type: String,
    nullable: true,
    maxLength: 200,
    description: 'Why the last attempt failed (timed out, HTTP 500, destination refused, ...).',
  })
  last_error!: string | null;
  @ApiProperty({ ...TIMESTAMP, nullable: true, description: 'Null once delivered or failed for good.' })
  next_attempt_at!: string | null;
  @ApiProperty(TIMESTAMP) created_at!: string;
  @ApiProperty(TIMESTAMP) updated_at!: string;
  @ApiProperty({ ...TIMESTAMP, nullable: true }) delivered_at!: string | null;
}

export const WEBHOOK_RESPONSE_MODELS = [WebhookSchema, WebhookWithSecretSchema, WebhookDeliverySchema];
