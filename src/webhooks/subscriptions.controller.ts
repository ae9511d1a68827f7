import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiBody, ApiNoContentResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal, Roles } from '../auth/decorators';
import type { Principal } from '../auth/principal';
import { NoQuery } from '../common/validation';
import { ApiCursorResponse, ApiDataResponse } from '../openapi/decorators';
import { ApiProblems } from '../openapi/problems';
import { idParamPipe } from '../common/id-param.pipe';
import { PAGE_DEFAULT_LIMIT } from '../quota/dto/quota.dto';
import { CreateWebhookDto, DeliveriesQuery, TestWebhookDto, UpdateWebhookDto, WebhooksQuery } from './dto/webhook.dto';
import { SubscriptionsService, webhookJson, type DeliveryView, type WebhookWithSecret } from './subscriptions.service';
import { WebhookDeliverySchema, WebhookSchema, WebhookWithSecretSchema } from './webhooks.schemas';

export const WebhookIdPipe = idParamPipe('Webhook');
export const DeliveryIdPipe = idParamPipe('Delivery');

function withSecretJson(created: WebhookWithSecret) {
  return { data: { ...webhookJson(created.webhook), secret: created.secret } };
}

function deliveryJson(delivery: DeliveryView) {
  return {
    id: delivery.id,
    event_id: delivery.eventUid,
    event_type: delivery.eventType,
    status: delivery.status,
    attempts: delivery.attempts,
    last_status_code: delivery.lastStatusCode,
    last_error: delivery.lastError,
    next_attempt_at: delivery.nextAttemptAt?.toISOString() ?? null,
    created_at: delivery.createdAt.toISOString(),
    updated_at: delivery.updatedAt.toISOString(),
    delivered_at: delivery.deliveredAt?.toISOString() ?? null,
  };
}

/** Webhook subscriptions and their delivery logs (contract §12): admins change them, operators read. */
@ApiTags('webhooks')
@Controller('admin/webhooks')
export class SubscriptionsController {
  constructor(private readonly webhooks: SubscriptionsService) {}

  @Get()
  @ApiOperation({ summary: 'Webhook subscriptions, newest first' })
  @ApiCursorResponse(WebhookSchema)
  @Roles('admin', 'operator')
  async list(@Query() query: WebhooksQuery) {
    const limit = query.limit ?? PAGE_DEFAULT_LIMIT;
    const page = await this.webhooks.list(query.cursor, limit);
    return { data: page.items.map(webhookJson), meta: { limit, next_cursor: page.nextCursor } };
  }

  @Post()
  @ApiOperation({ summary: 'Subscribe a URL to events; the answer shows the signing secret, once' })
  @ApiDataResponse(WebhookWithSecretSchema, { status: 201, description: 'Created' })
  @HttpCode(201)
  @Roles('admin')
  async create(@NoQuery() _query: undefined, @CurrentPrincipal() actor: Principal, @Body() body: CreateWebhookDto) {
    return withSecretJson(
      await this.webhooks.create(actor, {
        url: body.url,
        events: body.events,
        description: body.description,
        isActive: body.is_active,
      }),
    );
  }

  @Get(':id')
  @ApiOperation({ summary: 'One webhook subscription (without its secret)' })
  @ApiDataResponse(WebhookSchema)
  @Roles('admin', 'operator')
  async get(@NoQuery() _query: undefined, @Param('id', WebhookIdPipe) id: string) {
    return { data: webhookJson(await this.webhooks.get(id)) };
  }

  @Patch(':id')
  @ApiOperation({ summary: 'Change a webhook subscription (a new url is checked again)' })
  @ApiDataResponse(WebhookSchema)
  @Roles('admin')
  async update(
    @NoQuery() _query: undefined,
    @CurrentPrincipal() actor: Principal,
    @Param('id', WebhookIdPipe) id: string,
    @Body() body: UpdateWebhookDto,
  ) {
    const webhook = await this.webhooks.update(actor, id, {
      url: body.url,
      events: body.events,
      description: body.description,
      isActive: body.is_active,
    });
    return { data: webhookJson(webhook) };
  }

  @Delete(':id')
  @ApiOperation({ summary: 'Delete a webhook subscription and its delivery log' })
  @ApiNoContentResponse({ description: 'Deleted' })
  @HttpCode(204)
  @Roles('admin')
  async remove(
    @NoQuery() _query: undefined,
    @CurrentPrincipal() actor: Principal,
    @Param('id', WebhookIdPipe) id: string,
  ): Promise<void> {
    await this.webhooks.remove(actor, id);
  }

  @Post(':id/rotate-secret')
  @ApiOperation({ summary: 'A new signing secret; the previous one keeps signing beside it for 24 hours' })
  @ApiDataResponse(WebhookWithSecretSchema)
  @HttpCode(200)
  @Roles('admin')
  async rotateSecret(
    @NoQuery() _query: undefined,
    @CurrentPrincipal() actor: Principal,
    @Param('id', WebhookIdPipe) id: string,
  ) {
    return withSecretJson(await this.webhooks.rotateSecret(actor, id));
  }

  @Post(':id/test')
  @ApiOperation({ summary: 'Queue a webhook.test event for this subscription alone' })
  @ApiBody({ type: TestWebhookDto, required: false })
  @ApiDataResponse(WebhookDeliverySchema, { status: 202, description: 'Queued: the delivery the workers will send' })
  @ApiProblems('webhook_inactive')
  @HttpCode(202)
  @Roles('admin')
  async test(@NoQuery() _query: undefined, @Param('id', WebhookIdPipe) id: string, @Body() body: TestWebhookDto) {
    return { data: deliveryJson(await this.webhooks.sendTest(id, body.message)) };
  }

  @Get(':id/deliveries')
  @ApiOperation({ summary: "A webhook's deliveries, newest first" })
  @ApiCursorResponse(WebhookDeliverySchema)
  @Roles('admin', 'operator')
  async deliveries(@Param('id', WebhookIdPipe) id: string, @Query() query: DeliveriesQuery) {
    const limit = query.limit ?? PAGE_DEFAULT_LIMIT;
    const page = await this.webhooks.deliveries(id, { status: query.status, cursor: query.cursor }, limit);
    return { data: page.items.map(deliveryJson), meta: { limit, next_cursor: page.nextCursor } };
  }

  @Post(':id/deliveries/:delivery_id/redeliver')
  @ApiOperation({ summary: 'Send an event again: a new delivery with the same webhook-id, due now' })
  @ApiDataResponse(WebhookDeliverySchema, { status: 202, description: 'Queued: the new delivery' })
  @ApiProblems('delivery_pending', 'webhook_inactive')
  @HttpCode(202)
  @Roles('admin')
  async redeliver(
    @NoQuery() _query: undefined,
    @Param('id', WebhookIdPipe) id: string,
    @Param('delivery_id', DeliveryIdPipe) deliveryId: string,
  ) {
    return { data: deliveryJson(await this.webhooks.redeliver(id, deliveryId)) };
  }
}
