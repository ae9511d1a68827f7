import { ApiProperty, ApiPropertyOptional, ApiSchema } from '@nestjs/swagger';

/*
 * Response bodies as the API sends them. These classes exist only for the OpenAPI document: the
 * services build plain objects (see quota.views.ts, user.view.ts), and the conformance suite
 * checks real responses against these schemas so the two cannot drift apart unnoticed. Each
 * module keeps its own (auth/auth.schemas.ts, quota/quota.schemas.ts); here are the shared
 * field shapes, pagination and the probes' bodies.
 */

export const ID = { type: String, pattern: '^[1-9][0-9]{0,18}$', example: '42' } as const;
export const TIMESTAMP = { type: String, format: 'date-time', example: '2025-01-31T12:00:00.000Z' } as const;
export const INT32 = { type: 'integer', format: 'int32' } as const;
export const SLUG = { type: String, pattern: '^[a-z0-9][a-z0-9_-]{0,31}$', example: 'regular' } as const;

@ApiSchema({ name: 'PageMeta', description: 'Offset pagination.' })
export class PageMetaSchema {
  @ApiProperty({ type: 'integer', minimum: 1, example: 1 }) page!: number;
  @ApiProperty({ type: 'integer', minimum: 0, example: 20 }) per_page!: number;
  @ApiProperty({ type: 'integer', minimum: 0, example: 125 }) total!: number;
}

@ApiSchema({ name: 'CursorMeta', description: 'Keyset pagination: pass next_cursor as `cursor` for the next page.' })
export class CursorMetaSchema {
  @ApiProperty({ type: 'integer', minimum: 1, example: 50 }) limit!: number;
  @ApiProperty({ type: String, nullable: true, description: 'Null on the last page.' }) next_cursor!: string | null;
}

@ApiSchema({ name: 'BatchMeta' })
export class BatchMetaSchema {
  @ApiProperty({ type: 'integer', minimum: 1 }) created!: number;
}

@ApiSchema({ name: 'SeedHealth', description: "The seed system's health body, kept for its monitors." })
export class SeedHealthSchema {
  @ApiProperty({ enum: ['healthy', 'unhealthy'] }) status!: 'healthy' | 'unhealthy';
  @ApiProperty(TIMESTAMP) timestamp!: string;
  @ApiProperty({ enum: ['connected', 'disconnected'] }) database!: 'connected' | 'disconnected';
  @ApiProperty({ enum: ['operational', 'degraded'] }) quota_system!: 'operational' | 'degraded';
  @ApiProperty({
    type: 'object',
    additionalProperties: true,
    description:
      'Each check (database, migrations, redis when configured, lifecycle) with its status; during a write freeze ' +
      'also `maintenance`: `{status: "read_only", reason, since}`.',
  })
  details!: Record<string, unknown>;
}

@ApiSchema({ name: 'Liveness' })
export class LivenessSchema {
  @ApiProperty({ type: String, enum: ['ok'] }) status!: 'ok';
  @ApiProperty({ type: 'integer', minimum: 0 }) uptime_seconds!: number;
}

@ApiSchema({ name: 'Readiness', description: 'A @nestjs/terminus health check result.' })
export class ReadinessSchema {
  @ApiProperty({ enum: ['ok', 'error', 'shutting_down'] }) status!: string;
  @ApiPropertyOptional({ type: 'object', additionalProperties: true }) info?: Record<string, unknown>;
  @ApiPropertyOptional({ type: 'object', additionalProperties: true }) error?: Record<string, unknown>;
  @ApiPropertyOptional({ type: 'object', additionalProperties: true }) details?: Record<string, unknown>;
}

export const RESPONSE_MODELS = [
  PageMetaSchema,
  CursorMetaSchema,
  BatchMetaSchema,
  SeedHealthSchema,
  LivenessSchema,
  ReadinessSchema,
];
