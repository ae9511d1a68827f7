import { request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { DestinationPolicy, DestinationRefused, hostOf } from './destination-policy';

/** Bytes of a response body read at most; the rest is never received (the socket is destroyed). */
export const MAX_RESPONSE_BYTES = 64 * 1024;

export const USER_AGENT = 'quota-service-webhooks/1';

export interface OutgoingWebhook {
  readonly url: string;
  /** The event's stored body, sent byte for byte. */
  readonly body: string;
  /** The signature headers (webhook-id, webhook-timestamp, webhook-signature). */
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * How one attempt ended. `error` is in our own words (never a driver, DNS or socket message), for
 * the delivery log that operators and API clients read.
 */
export interface SendOutcome {
  readonly delivered: boolean;
  readonly statusCode: number | null;
  readonly error: string | null;
}

/** Failures by Node's error code, in the words the delivery log shows. */
function describeFailure(err: unknown): string {
  if (err instanceof DestinationRefused) return `destination refused: ${err.reason}`;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return 'connection failed';
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'connection reset';
  if (code === 'ETIMEDOUT') return 'timed out';
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return 'host unreachable';
  if (code.startsWith('HPE_')) return 'invalid HTTP response';
  if (code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || code.includes('CERT') || code.includes('SIGNATURE')) {
    return 'TLS handshake failed';
  }
  return 'connection failed';
}

function outcomeOfStatus(statusCode: number): SendOutcome {
  if (statusCode >= 200 && statusCode < 300) return { delivered: true, statusCode, error: null };
  if (statusCode >= 300 && statusCode < 400) return { delivered: false, statusCode, error: 'redirect not followed' };
  return { delivered: false, statusCode, error: `HTTP ${statusCode}` };
}

/**
 * One HTTP attempt of a webhook: a POST of the stored body with its signature headers, bounded
 * by `timeoutMs` as a whole (DNS, connect, TLS, response head and body). The destination is
 * checked again at every send: the host's addresses here (IP literals included, which Node's
 * `lookup` never sees), and the address the socket actually connects to in the policy's own
 * lookup. Redirects are not followed; at most MAX_RESPONSE_BYTES of the body are read and none is
 * kept. No connection is reused between attempts (`agent: false`), so nothing stays open after.
 */
export class WebhookSender {
  constructor(
    private readonly policy: DestinationPolicy,
    private readonly timeoutMs: number,
  ) {}

  send(webhook: OutgoingWebhook): Promise<SendOutcome> {
    return new Promise<SendOutcome>((resolve) => {
      let settled = false;
      let req: ClientRequest | undefined;
      let res: IncomingMessage | undefined;
      const finish = (outcome: SendOutcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        // Whatever is still open (a body we stopped reading, a hanging receiver) is dropped now.
        res?.destroy();
        req?.destroy();
        resolve(outcome);
      };
      const timer = setTimeout(
        () => finish({ delivered: false, statusCode: null, error: 'timed out' }),
        this.timeoutMs,
      );

      const start = async () => {
        const url = this.policy.parse(webhook.url);
        await this.policy.resolve(hostOf(url));
        if (settled) return;
        const body = Buffer.from(webhook.body, 'utf8');
        const options: RequestOptions = {
          method: 'POST',
          agent: false,
          lookup: this.policy.lookupFor(),
          headers: {
            ...webhook.headers,
            'content-type': 'application/json',
            'content-length': String(body.length),
            'user-agent': USER_AGENT,
          },
        };
        req = url.protocol === 'https:' ? httpsRequest(url, options) : httpRequest(url, options);
        req.on('error', (err) => finish({ delivered: false, statusCode: null, error: describeFailure(err) }));
        req.on('response', (response) => {
          res = response;
          const statusCode = response.statusCode ?? 0;
          let received = 0;
          response.on('data', (chunk: Buffer) => {
            received += chunk.length;
            // Enough: the status decides, and a receiver must not make us read (or hold) megabytes.
            if (received >= MAX_RESPONSE_BYTES) finish(outcomeOfStatus(statusCode));
          });
          response.on('end', () => finish(outcomeOfStatus(statusCode)));
          // Cut off before its end (the receiver hung up mid-body): the status it sent still stands.
          response.on('error', () => finish(outcomeOfStatus(statusCode)));
          response.on('close', () => finish(outcomeOfStatus(statusCode)));
        });
        req.end(body);
      };
      start().catch((err: unknown) => finish({ delivered: false, statusCode: null, error: describeFailure(err) }));
    });
  }
}
