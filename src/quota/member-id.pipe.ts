import { Injectable, type PipeTransform } from '@nestjs/common';
import { NotFoundError } from '../common/app-error';
import { ID_PATTERN } from './dto/validation';

const BIGINT_MAX = 9_223_372_036_854_775_807n;

function idPipe(what: string) {
  @Injectable()
  class IdPipe implements PipeTransform<string, string> {
    transform(value: string): string {
      // `/members/abc` names something that cannot exist: 404, like any other unknown id.
      if (typeof value !== 'string' || !ID_PATTERN.test(value) || BigInt(value) > BIGINT_MAX) {
        throw new NotFoundError(what);
      }
      return value;
    }
  }
  return IdPipe;
}

export const MemberIdPipe = idPipe('Member');
export const ConfigIdPipe = idPipe('Quota config');
export const HoldIdPipe = idPipe('Hold');
