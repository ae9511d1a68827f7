import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { signAttempt } from './signing';

const newSecret = () => `whsec_${randomBytes(24).toString('base64')}`;
const BODY = '{"type":"webhook.test","timestamp":"2026-12-06T10:00:00.000Z","data":{"note":"é ü \\u2028"}}';

describe('webhook signing', () => {
  it('signs as Standard Webhooks verifies: id, timestamp and body, keyed with the decoded secret', () => {
    const secret = newSecret();
    const at = new Date();
    const headers = signAttempt('msg_abc', BODY, { secret, previousSecret: null, previousSecretExpiresAt: null }, at);
    expect(headers['webhook-id']).toBe('msg_abc');
    expect(headers['webhook-timestamp']).toBe(String(Math.floor(at.getTime() / 1000)));
    expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(new Webhook(secret).verify(BODY, { ...headers })).toEqual(JSON.parse(BODY));
    // A different body, id or secret does not verify.
    expect(() => new Webhook(secret).verify(BODY.replace('note', 'nope'), { ...headers })).toThrow();
    expect(() => new Webhook(secret).verify(BODY, { ...headers, 'webhook-id': 'msg_other' })).toThrow();
    expect(() => new Webhook(newSecret()).verify(BODY, { ...headers })).toThrow();
  });

  it('signs with both secrets while a rotation overlaps, new one first', () => {
    const secret = newSecret();
    const previousSecret = newSecret();
    const at = new Date();
    const headers = signAttempt(
      'msg_rot',
      BODY,
      { secret, previousSecret, previousSecretExpiresAt: new Date(at.getTime() + 60_000) },
      at,
    );
    const parts = headers['webhook-signature'].split(' ');
    expect(parts).toHaveLength(2);
    expect(parts[0]).toBe(new Webhook(secret).sign('msg_rot', at, BODY));
    expect(parts[1]).toBe(new Webhook(previousSecret).sign('msg_rot', at, BODY));
    expect(new Webhook(secret).verify(BODY, { ...headers })).toEqual(JSON.parse(BODY));
    expect(new Webhook(previousSecret).verify(BODY, { ...headers })).toEqual(JSON.parse(BODY));
  });

  it('drops the previous secret once its overlap has ended', () => {
    const secret = newSecret();
    const previousSecret = newSecret();
    const at = new Date();
    const headers = signAttempt('msg_old', BODY, { secret, previousSecret, previousSecretExpiresAt: at }, at);
    expect(headers['webhook-signature'].split(' ')).toHaveLength(1);
    expect(new Webhook(secret).verify(BODY, { ...headers })).toEqual(JSON.parse(BODY));
    expect(() => new Webhook(previousSecret).verify(BODY, { ...headers })).toThrow();
  });
});
