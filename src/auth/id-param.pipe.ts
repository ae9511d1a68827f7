import { Injectable, type PipeTransform } from '@nestjs/common';
import { NotFoundError } from '../common/app-error';
import { ID_PATTERN } from './dto/user.dto';

/** `/users/abc` names a user that cannot exist: 404, like any other unknown id. */
@Injectable()
export class UserIdPipe implements PipeTransform<string, string> {
  transform(value: string): string {
    if (!ID_PATTERN.test(value) || BigInt(value) > 9_223_372_036_854_775_807n) throw new NotFoundError('User');
    return value;
  }
}
