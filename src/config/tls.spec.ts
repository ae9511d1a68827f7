import { describeTls, mysqlSslOptions, tlsConnectOptions } from './tls';

const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

describe('client TLS options', () => {
  it('give every client the CA and verification, and mysql2 the host-name check too', () => {
    const tls = { ca: PEM, caFile: '/etc/quota/ca.pem', rejectUnauthorized: true };
    expect(tlsConnectOptions(tls)).toEqual({ ca: PEM, rejectUnauthorized: true });
    expect(mysqlSslOptions(tls)).toEqual({ ca: PEM, rejectUnauthorized: true, verifyIdentity: true });
  });

  it('leave the CA to the built-in list when none is named', () => {
    const tls = { ca: undefined, caFile: undefined, rejectUnauthorized: true };
    expect(tlsConnectOptions(tls).ca).toBeUndefined();
    expect(mysqlSslOptions(tls)).toMatchObject({ rejectUnauthorized: true, verifyIdentity: true });
  });

  it('switch both checks off together in development', () => {
    const tls = { ca: undefined, caFile: undefined, rejectUnauthorized: false };
    expect(tlsConnectOptions(tls)).toMatchObject({ rejectUnauthorized: false });
    expect(mysqlSslOptions(tls)).toMatchObject({ rejectUnauthorized: false, verifyIdentity: false });
  });

  it('describe the mode for the start-up line without the certificate', () => {
    expect(describeTls(undefined)).toBe('plain');
    expect(describeTls({ ca: undefined, caFile: undefined, rejectUnauthorized: true })).toBe('TLS, built-in CAs');
    const withCa = describeTls({ ca: PEM, caFile: '/etc/quota/ca.pem', rejectUnauthorized: true });
    expect(withCa).toBe('TLS, CA /etc/quota/ca.pem');
    expect(withCa).not.toContain('BEGIN');
    expect(describeTls({ ca: PEM, caFile: '/x.pem', rejectUnauthorized: false })).toBe(
      'TLS without certificate verification',
    );
  });
});
