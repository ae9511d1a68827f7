import { applyDecorators, type Type } from '@nestjs/common';
import {
  ApiExtraModels,
  ApiHeader,
  ApiResponse,
  getSchemaPath,
  type HeaderObject,
  type ReferenceObject,
  type SchemaObject,
} from '@nestjs/swagger';
import { BatchMetaSchema, CursorMetaSchema, PageMetaSchema } from './schemas';

/** The optional bearer token of GET /metrics (METRICS_TOKEN). */
export const METRICS_TOKEN_SCHEME = 'metrics_token';

export interface DataResponseOptions {
  readonly status?: number;
  readonly description?: string;
  readonly headers?: Record<string, HeaderObject>;
  /** A `meta` object some answers of a `{"data": ...}` endpoint carry beside `data`. */
  readonly optionalMeta?: Type<unknown>;
}

/** Sent on every answer of the consumption API (balance, consume, refund). */
export const QUOTA_HEADERS: Record<string, HeaderObject> = {
  'X-Quota-Limit': { description: "The member's max_quota.", schema: { type: 'integer' } },
  'X-Quota-Remaining': { description: 'The balance after this request.', schema: { type: 'integer' } },
  'X-Quota-Reset': {
    description: 'When the balance next resets (ISO-8601), absent when the type never resets.',
    schema: { type: 'string' },
  },
};

export const REPLAY_HEADER: Record<string, HeaderObject> = {
  'Idempotent-Replayed': {
    description: '`true` when this is the stored answer to an earlier request with the same Idempotency-Key.',
    schema: { type: 'string', enum: ['true'] },
  },
};

function envelope(
  model: Type<unknown>,
  shape: 'one' | 'page' | 'cursor' | 'batch',
  optionalMeta?: Type<unknown>,
): SchemaObject {
  const ref = { $ref: getSchemaPath(model) };
  if (shape === 'one') {
    const properties: Record<string, ReferenceObject> = { data: ref };
    if (optionalMeta) properties.meta = { $ref: getSchemaPath(optionalMeta) };
    return { type: 'object', required: ['data'], properties };
  }
  const meta = { page: PageMetaSchema, cursor: CursorMetaSchema, batch: BatchMetaSchema }[shape];
  return {
    type: 'object',
    required: ['data', 'meta'],
    properties: { data: { type: 'array', items: ref }, meta: { $ref: getSchemaPath(meta) } },
  };
}

function dataResponse(model: Type<unknown>, shape: Parameters<typeof envelope>[1], options: DataResponseOptions) {
  return applyDecorators(
    ApiExtraModels(model, ...(options.optionalMeta ? [options.optionalMeta] : [])),
    ApiResponse({
      status: options.status ?? 200,
      description: options.description ?? 'OK',
      schema: envelope(model, shape, options.optionalMeta),
      ...(options.headers ? { headers: options.headers } : {}),
    }),
  );
}

/** `{"data": <model>}` */
export const ApiDataResponse = (model: Type<unknown>, options: DataResponseOptions = {}) =>
  dataResponse(model, 'one', options);

/** `{"data": [<model>], "meta": {page, per_page, total}}` */
export const ApiPageResponse = (model: Type<unknown>, options: DataResponseOptions = {}) =>
  dataResponse(model, 'page', options);

/** `{"data": [<model>], "meta": {limit, next_cursor}}` */
export const ApiCursorResponse = (model: Type<unknown>, options: DataResponseOptions = {}) =>
  dataResponse(model, 'cursor', options);

/** `{"data": [<model>], "meta": {created}}` */
export const ApiBatchResponse = (model: Type<unknown>, options: DataResponseOptions = {}) =>
  dataResponse(model, 'batch', options);

/** The optional Idempotency-Key request header of consume, refund and adjust. */
export const ApiIdempotencyKey = () =>
  ApiHeader({
    name: 'Idempotency-Key',
    required: false,
    description:
      'Up to 255 printable ASCII characters, scoped to the caller. Repeating a request with the same key and body ' +
      'returns the first answer (with Idempotent-Replayed: true) and changes nothing; the same key with another ' +
      'body is 422 idempotency_key_mismatch; a repeat while the first is still running is 409. Keys expire after 24 h.',
    schema: { type: 'string', minLength: 1, maxLength: 255 },
  });
