import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsBoolean,
  IsInt,
  IsString,
  Matches,
  Max,
  Min,
  ValidateNested,
} from 'class-validator';
import { Absentable, EXTERNAL_ID_PATTERN, INT32_MAX, MEMBERSHIP_TYPE_PATTERN, QueryInt } from './validation';

export const MAX_BATCH_MEMBERS = 1000;
const SLUG_MESSAGE = 'membership_type must match ^[a-z0-9][a-z0-9_-]{0,31}$';
const EXTERNAL_ID_MESSAGE = 'external_id must be 1-191 printable ASCII characters without spaces';

export class CreateMemberDto {
  @ApiProperty({ type: String, pattern: EXTERNAL_ID_PATTERN.source, example: 'user-1001' })
  @IsString({ message: EXTERNAL_ID_MESSAGE })
  @Matches(EXTERNAL_ID_PATTERN, { message: EXTERNAL_ID_MESSAGE })
  external_id!: string;

  @ApiProperty({ type: String, pattern: MEMBERSHIP_TYPE_PATTERN.source, example: 'regular' })
  @IsString({ message: SLUG_MESSAGE })
  @Matches(MEMBERSHIP_TYPE_PATTERN, { message: SLUG_MESSAGE })
  membership_type!: string;

  @ApiPropertyOptional({
    type: 'integer',
    minimum: 0,
    maximum: INT32_MAX,
    description: "The starting balance; the type's max_quota when absent.",
  })
  @Absentable()
  @IsInt()
  @Min(0)
  @Max(INT32_MAX)
  initial_quota?: number;
}

export class BatchCreateMembersDto {
  @ApiProperty({ type: () => [CreateMemberDto], minItems: 1, maxItems: MAX_BATCH_MEMBERS })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(MAX_BATCH_MEMBERS)
  @ValidateNested({ each: true })
  @Type(() => CreateMemberDto)
  members!: CreateMemberDto[];
}

export class UpdateMemberDto {
  @ApiPropertyOptional({ type: String, pattern: MEMBERSHIP_TYPE_PATTERN.source, example: 'regular' })
  @Absentable()
  @IsString({ message: SLUG_MESSAGE })
  @Matches(MEMBERSHIP_TYPE_PATTERN, { message: SLUG_MESSAGE })
  membership_type?: string;

  @ApiPropertyOptional({ type: Boolean })
  @Absentable()
  @IsBoolean()
  is_active?: boolean;
}

export class ListMembersQuery {
  @ApiPropertyOptional({ type: String, pattern: MEMBERSHIP_TYPE_PATTERN.source, example: 'regular' })
  @Absentable()
  @IsString({ message: SLUG_MESSAGE })
  @Matches(MEMBERSHIP_TYPE_PATTERN, { message: SLUG_MESSAGE })
  membership_type?: string;

  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: 1_000_000, default: 1 })
  @Absentable()
  @QueryInt()
  @IsInt()
  @Min(1)
  @Max(1_000_000)
  page?: number;

  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: 100, default: 20 })
  @Absentable()
  @QueryInt()
  @IsInt()
  @Min(1)
  @Max(100)
  per_page?: number;
}
