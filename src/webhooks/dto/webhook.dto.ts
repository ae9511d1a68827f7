import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ArrayNotEmpty, IsArray, IsBoolean, IsIn, IsOptional, IsString, MaxLength } from 'class-validator';
import { OptionalBody } from '../../common/body-parsing';
import { EVENT_TYPES, type EventType } from '../../events/event-types';
import { CursorPageQuery } from '../../quota/dto/quota.dto';
import { Absentable } from '../../quota/dto/validation';

export const WEBHOOK_URL_MAX_LENGTH = 2048;
export const WEBHOOK_DESCRIPTION_MAX_LENGTH = 500;
export const WEBHOOK_TEST_MESSAGE_MAX_LENGTH = 500;
export const DELIVERY_STATUSES = ['pending', 'delivered', 'failed'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

const EVENTS_MESSAGE = `each value in events must be one of ${EVENT_TYPES.join(', ')}`;
const URL_DESCRIPTION =
  'An absolute https URL (http only when the deployment sets WEBHOOK_ALLOW_HTTP=true), without a user name or ' +
  'password, whose host resolves to public addresses only (unless WEBHOOK_ALLOW_PRIVATE_NETWORKS=true).';
const EVENTS_DESCRIPTION = 'The event types it receives; a type named twice counts once.';

export class CreateWebhookDto {
  @ApiProperty({
    type: String,
    maxLength: WEBHOOK_URL_MAX_LENGTH,
    example: 'https://hooks.example.com/quota',
    description: URL_DESCRIPTION,
  })
  @IsString()
  @MaxLength(WEBHOOK_URL_MAX_LENGTH)
  url!: string;

  @ApiProperty({
    enum: EVENT_TYPES,
    enumName: 'WebhookEventType',
    isArray: true,
    minItems: 1,
    example: ['anomaly.detected', 'operation.failed'],
    description: EVENTS_DESCRIPTION,
  })
  @IsArray()
  @ArrayNotEmpty({ message: 'events must name at least one event type' })
  @IsIn(EVENT_TYPES, { each: true, message: EVENTS_MESSAGE })
  events!: EventType[];

  @ApiPropertyOptional({ type: String, nullable: true, maxLength: WEBHOOK_DESCRIPTION_MAX_LENGTH })
  @IsOptional()
  @IsString()
  @MaxLength(WEBHOOK_DESCRIPTION_MAX_LENGTH)
  description?: string | null;

  @ApiPropertyOptional({ type: Boolean, default: true })
  @Absentable()
  @IsBoolean()
  is_active?: boolean;
}

/** Every field is optional; the URL, when given, is checked again. */
export class UpdateWebhookDto {
  @ApiPropertyOptional({ type: String, maxLength: WEBHOOK_URL_MAX_LENGTH, description: URL_DESCRIPTION })
  @Absentable()
  @IsString()
  @MaxLength(WEBHOOK_URL_MAX_LENGTH)
  url?: string;

  @ApiPropertyOptional({
    enum: EVENT_TYPES,
    enumName: 'WebhookEventType',
    isArray: true,
    minItems: 1,
    description: EVENTS_DESCRIPTION,
  })
  @Absentable()
  @IsArray()
  @ArrayNotEmpty({ message: 'events must name at least one event type' })
  @IsIn(EVENT_TYPES, { each: true, message: EVENTS_MESSAGE })
  events?: EventType[];

  @ApiPropertyOptional({ type: String, nullable: true, maxLength: WEBHOOK_DESCRIPTION_MAX_LENGTH })
  @IsOptional()
  @IsString()
  @MaxLength(WEBHOOK_DESCRIPTION_MAX_LENGTH)
  description?: string | null;

  @ApiPropertyOptional({ type: Boolean })
  @Absentable()
  @IsBoolean()
  is_active?: boolean;
}

/** The test event's body is optional: an empty one sends the default message. */
@OptionalBody()
export class TestWebhookDto {
  @ApiPropertyOptional({
    type: String,
    maxLength: WEBHOOK_TEST_MESSAGE_MAX_LENGTH,
    description: "The test event's `data.message`; a fixed sentence when absent.",
  })
  @Absentable()
  @IsString()
  @MaxLength(WEBHOOK_TEST_MESSAGE_MAX_LENGTH)
  message?: string;
}

export class WebhooksQuery extends CursorPageQuery {}

export class DeliveriesQuery extends CursorPageQuery {
  @ApiPropertyOptional({ enum: DELIVERY_STATUSES, enumName: 'WebhookDeliveryStatus' })
  @Absentable()
  @IsIn(DELIVERY_STATUSES, { message: `status must be one of ${DELIVERY_STATUSES.join(', ')}` })
  status?: DeliveryStatus;
}
