import { ValidationFailedError } from './app-error';

/**
 * The `next_cursor` of a newest-first list paged on a BIGINT id: the last id of the page, tagged
 * with the list's letter (so one list's cursor is refused by another) and base64url-encoded, so
 * clients treat it as opaque.
 */
export class KeysetCursor {
  private readonly pattern: RegExp;

  constructor(private readonly tag: string) {
    this.pattern = new RegExp(`^${tag}:([1-9]\\d{0,18})$`);
  }

  encode(id: string): string {
    return Buffer.from(`${this.tag}:${id}`).toString('base64url');
  }

  /** The id a cursor names; 422 on the `cursor` field when it is not one of this list's. */
  decode(cursor: string): string {
    const match = this.pattern.exec(Buffer.from(cursor, 'base64url').toString());
    if (!match) throw new ValidationFailedError([{ field: 'cursor', message: 'cursor is not a valid next_cursor' }]);
    return match[1];
  }
}
