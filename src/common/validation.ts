import {
  createParamDecorator,
  ValidationPipe,
  type ArgumentMetadata,
  type ExecutionContext,
  type ValidationError,
} from '@nestjs/common';
import { AppError, ValidationFailedError, type FieldError } from './app-error';
import { acceptsEmptyBody, isEmptyBody } from './body-parsing';
import type { HttpRequest } from './http';

function flatten(errors: readonly ValidationError[], parent = ''): FieldError[] {
  return errors.flatMap((error) => {
    const field = parent ? `${parent}.${error.property}` : error.property;
    const own = Object.values(error.constraints ?? {}).map((message) => ({ field, message }));
    return [...own, ...flatten(error.children ?? [], field)];
  });
}

/**
 * One pipe for every body, query and job payload: unknown fields are refused (no mass
 * assignment), values are converted to the DTO's types, failures become a 422 listing each field.
 */
export function createValidationPipe(): ValidationPipe {
  return new BodyValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    transform: true,
    validationError: { target: false, value: false },
    exceptionFactory: (errors) => new ValidationFailedError(flatten(errors)),
  });
}

/**
 * An empty body reaches only routes that take a body: for them it is not valid JSON, unless the
 * body's fields are all optional (@OptionalBody), where it is an object without fields.
 */
class BodyValidationPipe extends ValidationPipe {
  override transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (metadata.type === 'body' && isEmptyBody(value) && acceptsEmptyBody(metadata.metatype)) {
      return super.transform({}, metadata) as Promise<unknown>;
    }
    if (metadata.type === 'body' && isEmptyBody(value)) {
      return Promise.reject(
        new AppError('malformed_json', 'The request body is empty; this endpoint takes a JSON object.'),
      );
    }
    return super.transform(value, metadata) as Promise<unknown>;
  }
}

/**
 * For routes that take no query parameters: any parameter is refused (422), never ignored, with
 * the same message the validation pipe gives for an unknown field. A plain check rather than an
 * empty DTO: it runs on the consume path, where the validation pipe's cost shows.
 */
export const NoQuery = createParamDecorator((_data: unknown, ctx: ExecutionContext): undefined => {
  const query = ctx.switchToHttp().getRequest<HttpRequest>().query;
  const names = Object.keys(query ?? {});
  if (names.length > 0) {
    throw new ValidationFailedError(names.map((field) => ({ field, message: `property ${field} should not exist` })));
  }
  return undefined;
});
