import { Webhook } from 'standardwebhooks';
import { newWebhookSecret } from './secrets';

describe('webhook secrets', () => {
  it('are whsec_ + base64 of 32 random bytes, each one new', () => {
    const secrets = Array.from({ length: 50 }, () => newWebhookSecret());
    for (const secret of secrets) {
      expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      expect(Buffer.from(secret.slice('whsec_'.length), 'base64')).toHaveLength(32);
    }
    expect(new Set(secrets).size).toBe(secrets.length);
  });

  it('are taken as they are by the standardwebhooks library a receiver verifies with', () => {
    const secret = newWebhookSecret();
    const body = JSON.stringify({ type: 'webhook.test', timestamp: new Date().toISOString(), data: {} });
    const at = new Date();
    const headers = {
      'webhook-id': 'msg_test',
      'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
      'webhook-signature': new Webhook(secret).sign('msg_test', at, body),
    };
    expect(new Webhook(secret).verify(body, headers)).toEqual(JSON.parse(body));
    expect(() => new Webhook(newWebhookSecret()).verify(body, headers)).toThrow('No matching signature found');
  });
});
