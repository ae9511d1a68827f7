import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform, Type } from 'class-transformer';
import {
  IsBoolean,
  IsEmail,
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
  MinLength,
  ValidateIf,
} from 'class-validator';
import { ID_PATTERN } from '../../common/id-param.pipe';
import { ROLES, type Role } from '../principal';

export const PASSWORD_MIN_LENGTH = 12;
export const PASSWORD_MAX_LENGTH = 256;
export { ID_PATTERN };

/** Ids travel as strings of digits; a client that sends a plain JSON integer is accepted too. */
const idFromNumber = ({ value }: { value: unknown }) =>
  typeof value === 'number' && Number.isSafeInteger(value) && value > 0 ? String(value) : value;

export class CreateUserDto {
  @ApiProperty({ type: String, format: 'email', maxLength: 191 })
  @IsEmail({}, { message: 'email must be an email address' })
  @MaxLength(191)
  email!: string;

  @ApiProperty({ type: String, format: 'password', minLength: PASSWORD_MIN_LENGTH, maxLength: PASSWORD_MAX_LENGTH })
  @IsString()
  @MinLength(PASSWORD_MIN_LENGTH)
  @MaxLength(PASSWORD_MAX_LENGTH)
  password!: string;

  @ApiProperty({ enum: ROLES, enumName: 'Role' })
  @IsIn(ROLES, { message: `role must be one of ${ROLES.join(', ')}` })
  role!: Role;

  /** Required for role `member` (the member this user acts as); refused for the other roles. */
  @ApiPropertyOptional({
    type: String,
    nullable: true,
    pattern: ID_PATTERN.source,
    description: 'Required for role `member` (the member it acts as); refused for other roles.',
  })
  @IsOptional()
  @Transform(idFromNumber)
  @IsString({ message: 'member_id must be a member id (a string of digits)' })
  @Matches(ID_PATTERN, { message: 'member_id must be a member id (a string of digits)' })
  member_id?: string;
}

export class UpdateUserDto {
  @ApiPropertyOptional({ enum: ROLES, enumName: 'Role' })
  @ValidateIf((_o, value) => value !== undefined)
  @IsIn(ROLES, { message: `role must be one of ${ROLES.join(', ')}` })
  role?: Role;

  @ApiPropertyOptional({ type: Boolean })
  @ValidateIf((_o, value) => value !== undefined)
  @IsBoolean()
  is_active?: boolean;

  @ApiPropertyOptional({
    type: String,
    format: 'password',
    minLength: PASSWORD_MIN_LENGTH,
    maxLength: PASSWORD_MAX_LENGTH,
  })
  @ValidateIf((_o, value) => value !== undefined)
  @IsString()
  @MinLength(PASSWORD_MIN_LENGTH)
  @MaxLength(PASSWORD_MAX_LENGTH)
  password?: string;

  /** Needed when the role becomes `member`; cleared automatically when it stops being one. */
  @ApiPropertyOptional({
    type: String,
    pattern: ID_PATTERN.source,
    description: 'Needed when the role becomes `member`; cleared when it stops being one.',
  })
  @ValidateIf((_o, value) => value !== undefined)
  @Transform(idFromNumber)
  @IsString({ message: 'member_id must be a member id (a string of digits)' })
  @Matches(ID_PATTERN, { message: 'member_id must be a member id (a string of digits)' })
  member_id?: string;
}

export class ListUsersQuery {
  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: 1_000_000, default: 1 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(1_000_000)
  page?: number;

  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: 100, default: 20 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(100)
  per_page?: number;

  @ApiPropertyOptional({ enum: ROLES, enumName: 'Role' })
  @IsOptional()
  @IsIn(ROLES, { message: `role must be one of ${ROLES.join(', ')}` })
  role?: Role;

  @ApiPropertyOptional({ type: String, enum: ['true', 'false'] })
  @IsOptional()
  @IsIn(['true', 'false'], { message: 'is_active must be true or false' })
  is_active?: 'true' | 'false';
}
