import type { ConnectionOptions } from 'node:tls';
import type { SslOptions } from 'mysql2';
import type { TlsConfig } from './app-config';

/**
 * Options for Node's tls.connect, as ioredis (`tls`) takes them for every Redis client (BullMQ's
 * included). Node checks the chain and the host name (or IP) against the certificate;
 * without a CA it trusts its built-in list.
 */
export function tlsConnectOptions(tls: TlsConfig): ConnectionOptions {
  return { ca: tls.ca, rejectUnauthorized: tls.rejectUnauthorized };
}

/**
 * mysql2 checks the chain but not the host name unless told to (`verifyIdentity`); a certificate
 * any customer of the same CA could hold must not pass for the database's, so it is on whenever
 * verification is.
 */
export function mysqlSslOptions(tls: TlsConfig): SslOptions {
  return { ca: tls.ca, rejectUnauthorized: tls.rejectUnauthorized, verifyIdentity: tls.rejectUnauthorized };
}

/** How a connection is secured, for the start-up line: names the CA file, never its content. */
export function describeTls(tls: TlsConfig | undefined): string {
  if (!tls) return 'plain';
  if (!tls.rejectUnauthorized) return 'TLS without certificate verification';
  return tls.caFile === undefined ? 'TLS, built-in CAs' : `TLS, CA ${tls.caFile}`;
}
