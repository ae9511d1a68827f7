import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { errorCodes, type RawServerDefault } from 'fastify';

/**
 * What an empty request body parses to, whatever its Content-Type. Many HTTP clients send
 * `Content-Type: application/json` on every call, DELETE and cancel included; a route that takes
 * no body never looks at it, and a route that does take one refuses it as malformed JSON (see the
 * validation pipe), as before.
 */
export const EMPTY_BODY: Readonly<Record<string, never>> = Object.freeze({});

export function isEmptyBody(value: unknown): boolean {
  return value === EMPTY_BODY;
}

const OPTIONAL_BODY = Symbol('optional-body');

/**
 * Marks a body DTO whose fields are all optional: an empty body means "no fields" (e.g. a hold's
 * commit, whose amount defaults to the whole hold) instead of malformed JSON.
 */
export function OptionalBody(): ClassDecorator {
  return (target) => {
    Reflect.defineProperty(target, OPTIONAL_BODY, { value: true });
  };
}

export function acceptsEmptyBody(metatype: unknown): boolean {
  return typeof metatype === 'function' && Reflect.get(metatype, OPTIONAL_BODY) === true;
}

/**
 * The request body parsers: JSON (Fastify's own parser, prototype poisoning refused) and, for any
 * other media type, nothing but the empty body (415 otherwise). Registered before Nest adds its
 * defaults, which it then leaves out.
 */
export function registerBodyParsers(app: NestFastifyApplication): void {
  const fastify = app.getHttpAdapter().getInstance();
  const parseJson = fastify.getDefaultJsonParser('error', 'error');
  app.useBodyParser<RawServerDefault>('application/json', {}, (request, body, done) => {
    if (body.length === 0) return done(null, EMPTY_BODY);
    void parseJson(request, body.toString('utf8'), done);
  });
  // text/plain replaces Fastify's own parser, which would hand an empty body over as "".
  for (const type of ['text/plain', '*']) {
    app.useBodyParser<RawServerDefault>(type, {}, (request, body, done) => {
      if (body.length === 0) return done(null, EMPTY_BODY);
      done(new errorCodes.FST_ERR_CTP_INVALID_MEDIA_TYPE(request.headers['content-type'] ?? ''), undefined);
    });
  }
}
