import type { HttpReply } from '../common/http';
import type { QuotaHeaders } from './quota.service';

/** A balance change's answer headers: its X-Quota-* headers, and Idempotent-Replayed on a replay. */
export function sendChangeHeaders(res: HttpReply, headers: QuotaHeaders, replayed = false): void {
  for (const [name, value] of Object.entries(headers)) res.header(name, value);
  if (replayed) res.header('Idempotent-Replayed', 'true');
}
