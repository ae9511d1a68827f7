import { IsNotEmpty, IsString, MaxLength } from 'class-validator';

/** Only shape is checked: a malformed email simply matches no account (same 401 as any other). */
export class LoginDto {
  @IsString()
  @IsNotEmpty()
  @MaxLength(254)
  email!: string;

  @IsString()
  @IsNotEmpty()
  @MaxLength(1024)
  password!: string;
}
