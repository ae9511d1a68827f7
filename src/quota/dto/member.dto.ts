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
  @IsString({ message: EXTERNAL_ID_MESSAGE })
  @Matches(EXTERNAL_ID_PATTERN, { message: EXTERNAL_ID_MESSAGE })
  external_id!: string;

  @IsString({ message: SLUG_MESSAGE })
  @Matches(MEMBERSHIP_TYPE_PATTERN, { message: SLUG_MESSAGE })
  membership_type!: string;

  @Absentable()
  @IsInt()
  @Min(0)
  @Max(INT32_MAX)
  initial_quota?: number;
}

export class BatchCreateMembersDto {
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(MAX_BATCH_MEMBERS)
  @ValidateNested({ each: true })
  @Type(() => CreateMemberDto)
  members!: CreateMemberDto[];
}

export class UpdateMemberDto {
  @Absentable()
  @IsString({ message: SLUG_MESSAGE })
  @Matches(MEMBERSHIP_TYPE_PATTERN, { message: SLUG_MESSAGE })
  membership_type?: string;

  @Absentable()
  @IsBoolean()
  is_active?: boolean;
}

export class ListMembersQuery {
  @Absentable()
  @IsString({ message: SLUG_MESSAGE })
  @Matches(MEMBERSHIP_TYPE_PATTERN, { message: SLUG_MESSAGE })
  membership_type?: string;

  @Absentable()
  @QueryInt()
  @IsInt()
  @Min(1)
  @Max(1_000_000)
  page?: number;

  @Absentable()
  @QueryInt()
  @IsInt()
  @Min(1)
  @Max(100)
  per_page?: number;
}
