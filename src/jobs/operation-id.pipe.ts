import { Injectable, type PipeTransform } from '@nestjs/common';
import { NotFoundError } from '../common/app-error';
import { ID_PATTERN } from '../quota/dto/validation';

/** `/operations/abc` names something that cannot exist: 404, like any other unknown id. */
@Injectable()
export class OperationIdPipe implements PipeTransform<string, string> {
  transform(value: string): string {
    if (typeof value !== 'string' || !ID_PATTERN.test(value) || BigInt(value) > 9_223_372_036_854_775_807n) {
      throw new NotFoundError('Operation');
    }
    return value;
  }
}
