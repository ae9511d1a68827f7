import { ApiProperty, ApiSchema } from '@nestjs/swagger';
import { ID, TIMESTAMP, INT32 } from '../openapi/schemas';
import { ROLES, type Role } from './principal';

/** The auth module's response bodies, for the OpenAPI document (see openapi/schemas.ts). */
@ApiSchema({ name: 'User' })
export class UserSchema {
  @ApiProperty(ID) id!: string;
  @ApiProperty({ type: String, format: 'email', example: 'ops@example.com' }) email!: string;
  @ApiProperty({ enum: ROLES, enumName: 'Role' }) role!: Role;
  @ApiProperty({ ...ID, nullable: true, description: 'The member a `member` user acts as; null for other roles.' })
  member_id!: string | null;
  @ApiProperty({ type: Boolean }) is_active!: boolean;
  @ApiProperty(TIMESTAMP) created_at!: string;
  @ApiProperty(TIMESTAMP) updated_at!: string;
}

@ApiSchema({ name: 'LoginResult' })
export class LoginResultSchema {
  @ApiProperty({ type: String, description: 'A JWT to send as `Authorization: Bearer <token>`.' })
  access_token!: string;
  @ApiProperty({ type: String, enum: ['Bearer'] }) token_type!: 'Bearer';
  @ApiProperty({ ...INT32, description: 'Seconds until the token expires.', example: 3600 }) expires_in!: number;
  @ApiProperty({ type: () => UserSchema }) user!: UserSchema;
}

export const AUTH_RESPONSE_MODELS = [UserSchema, LoginResultSchema];
