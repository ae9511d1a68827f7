import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from './app-config';

const STRONG_SECRET = 'Zx8#kq2!Lm9@Vb4$Np7%Rt1^Wy6&Hs3*Jd5(Gf0)';

/** A self-signed P-256 CA certificate (parsing only; nothing connects with it). */
const CA_PEM = `-----BEGIN CERTIFICATE-----
MIIBoDCCAUegAwIBAgIUdzJT4JwjwCgEiJQJvn9icXFwxgQwCgYIKoZIzj0EAwIw
HTEbMBkGA1UEAwwSUXVvdGEgdW5pdCB0ZXN0IENBMCAXDTI2MTIwNjAxNDIwM1oY
DzIxMjYxMTEyMDE0MjAzWjAdMRswGQYDVQQDDBJRdW90YSB1bml0IHRlc3QgQ0Ew
WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATVoBlLPbe+SNiB+WGZVp1gt1fOg8yX
5N/xWPVGHN6V0vL739ufSagZgDeJOx1uJKGi7pWNBcad0xRoySuPjewco2MwYTAd
BgNVHQ4EFgQUOQiNpy5nlAQW0iYDwpWGea1BGlYwHwYDVR0jBBgwFoAUOQiNpy5n
lAQW0iYDwpWGea1BGlYwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAQYw
CgYIKoZIzj0EAwIDRwAwRAIgAQzwhfFhhJKAfK4eAu2ThuclaE/dLcsU45/PZJKe
14sCIH8dS8yhilS7H7L3gs7B2twg88YxAkDBwtRTRz7Fr7rI
-----END CERTIFICATE-----
`;

function expectConfigError(env: Record<string, string>, variable: string, fragment?: RegExp): void {
  let caught: unknown;
  try {
    loadConfig(env);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ConfigError);
  expect((caught as ConfigError).variable).toBe(variable);
  expect((caught as ConfigError).message.startsWith(`${variable}: `)).toBe(true);
  if (fragment) expect((caught as ConfigError).message).toMatch(fragment);
}

describe('loadConfig', () => {
  it('runs on the embedded database with sensible defaults when nothing is set', () => {
    const config = loadConfig({}, () => 'generated-secret');
    expect(config.database).toEqual({ kind: 'sqlite', path: 'data/quota.sqlite' });
    expect(config.port).toBe(3000);
    expect(config.role).toBe('all');
    expect(config.redis).toBeUndefined();
    expect(config.migrationsRun).toBe(true);
    expect(config.jwt).toEqual({ secret: 'generated-secret', expiresInSeconds: 3600, secretGenerated: true });
    expect(config.bodyLimitBytes).toBe(1024 * 1024);
    expect(config.quota).toEqual({ statsTtlSeconds: 300, timezone: 'UTC', holdExpiryIntervalMs: 1000 });
    expect(config.analytics).toMatchObject({
      intervalMs: 2000,
      safetyLagMs: 5000,
      batchSize: 5000,
      gapMaxAgeMs: 3_600_000,
      reconcileIntervalMs: 600_000,
      anomalyRetentionDays: 90,
    });
    expect(config.analytics.anomaly).toMatchObject({ windowSeconds: 300, zScore: 4, burstCount: 20, burstSeconds: 10 });
    expect(config.trustProxyHops).toBe(0);
    expect(config.corsOrigins).toEqual([]);
    expect(config.login).toEqual({ maxFailures: 5, failureWindowSeconds: 900, lockSeconds: 900 });
  });

  it('reads the analytics and anomaly thresholds, refusing nonsense', () => {
    const config = loadConfig({
      QUOTA_ANALYTICS_LAG_MS: '0',
      QUOTA_ANOMALY_ZSCORE: '3.5',
      QUOTA_ANOMALY_BURST_COUNT: '5',
      QUOTA_ANOMALY_RETENTION_DAYS: '0',
      QUOTA_ANALYTICS_GAP_MAX_AGE_MS: '60000',
      QUOTA_ANALYTICS_RECONCILE_MS: '0',
    });
    expect(config.analytics.safetyLagMs).toBe(0);
    expect(config.analytics.gapMaxAgeMs).toBe(60_000);
    expect(config.analytics.reconcileIntervalMs).toBe(0);
    expect(config.analytics.anomalyRetentionDays).toBe(0);
    expect(config.analytics.anomaly.zScore).toBe(3.5);
    expect(config.analytics.anomaly.burstCount).toBe(5);
    expectConfigError({ QUOTA_ANOMALY_ZSCORE: 'high' }, 'QUOTA_ANOMALY_ZSCORE');
    expectConfigError({ QUOTA_ANOMALY_BURST_COUNT: '1' }, 'QUOTA_ANOMALY_BURST_COUNT');
    expectConfigError({ QUOTA_ANOMALY_RETENTION_DAYS: '-1' }, 'QUOTA_ANOMALY_RETENTION_DAYS');
    expectConfigError({ QUOTA_ANOMALY_RETENTION_DAYS: '30d' }, 'QUOTA_ANOMALY_RETENTION_DAYS');
    expectConfigError({ QUOTA_ANALYTICS_RECONCILE_MS: '-1' }, 'QUOTA_ANALYTICS_RECONCILE_MS');
  });

  it('reads the login lockout settings', () => {
    const config = loadConfig({ LOGIN_MAX_FAILURES: '3', LOGIN_FAILURE_WINDOW: '10m', LOGIN_LOCK_DURATION: '1h' });
    expect(config.login).toEqual({ maxFailures: 3, failureWindowSeconds: 600, lockSeconds: 3600 });
  });

  it('reads the seed names for MySQL and Redis', () => {
    const config = loadConfig({
      DB_CONNECTION: 'mysql',
      DB_HOST: 'db.internal',
      DB_PORT: '3307',
      DB_DATABASE: 'production_db',
      DB_USERNAME: 'production_user',
      DB_PASSWORD: 'production_password',
      REDIS_HOST: 'cache.internal',
      REDIS_PORT: '6380',
      REDIS_PASSWORD: 'pw',
      REDIS_DB: '2',
      REDIS_PREFIX: 'quota-eu',
      APP_ENV: 'production',
      APP_DEBUG: 'false',
      APP_URL: 'https://quota.example.com',
      LOG_LEVEL: 'error',
      JWT_SECRET: STRONG_SECRET,
      JWT_EXPIRES_IN: '15m',
      CORS_ORIGINS: 'https://admin.example.com, https://ops.example.com',
      TRUST_PROXY: '2',
      BODY_LIMIT: '512kb',
      THROTTLE_TTL: '30',
      THROTTLE_LIMIT: '0',
      THROTTLE_LOGIN_LIMIT: '5',
      QUOTA_STATS_TTL: '120',
      QUOTA_TIMEZONE: 'Europe/Berlin',
      APP_ROLE: 'worker',
      PORT: '8080',
      ADMIN_EMAIL: 'root@example.com',
      ADMIN_PASSWORD: 'a-long-admin-password',
    });
    expect(config.database).toEqual({
      kind: 'mysql',
      host: 'db.internal',
      port: 3307,
      database: 'production_db',
      username: 'production_user',
      password: 'production_password',
      poolSize: 10,
      batchPoolSize: 10,
    });
    expect(config.redis).toEqual({
      topology: { kind: 'single', host: 'cache.internal', port: 6380 },
      password: 'pw',
      db: 2,
      prefix: 'quota-eu',
    });
    const sized = loadConfig({ DB_CONNECTION: 'mysql', DB_POOL_SIZE: '20', DB_BATCH_POOL_SIZE: '4' });
    expect(sized.database).toMatchObject({ poolSize: 20, batchPoolSize: 4 });
    expect(loadConfig({ DB_CONNECTION: 'mysql', DB_POOL_SIZE: '20' }).database).toMatchObject({ batchPoolSize: 20 });
    expect(config.isProduction).toBe(true);
    expect(config.migrationsRun).toBe(false);
    expect(config.logLevel).toBe('error');
    expect(config.jwt.expiresInSeconds).toBe(900);
    expect(config.corsOrigins).toEqual(['https://admin.example.com', 'https://ops.example.com']);
    expect(config.trustProxyHops).toBe(2);
    expect(config.bodyLimitBytes).toBe(512 * 1024);
    expect(config.bulkBodyLimitBytes).toBe(4 * 1024 * 1024);
    expect(config.throttle).toEqual({ ttlSeconds: 30, limit: 0, loginLimit: 5 });
    expect(config.quota).toMatchObject({ statsTtlSeconds: 120, timezone: 'Europe/Berlin' });
    expect(config.role).toBe('worker');
    expect(config.port).toBe(8080);
    expect(config.bootstrapAdmin).toEqual({ email: 'root@example.com', password: 'a-long-admin-password' });
  });

  it('serves the API docs outside production unless API_DOCS_ENABLED says otherwise', () => {
    const production = { APP_ENV: 'production', JWT_SECRET: STRONG_SECRET };
    expect(loadConfig({}).apiDocsEnabled).toBe(true);
    expect(loadConfig({ API_DOCS_ENABLED: 'false' }).apiDocsEnabled).toBe(false);
    expect(loadConfig(production).apiDocsEnabled).toBe(false);
    expect(loadConfig({ ...production, API_DOCS_ENABLED: 'true' }).apiDocsEnabled).toBe(true);
    expectConfigError({ API_DOCS_ENABLED: 'sometimes' }, 'API_DOCS_ENABLED', /true or false/);
  });

  it('maps Laravel log levels onto pino levels', () => {
    expect(loadConfig({ LOG_LEVEL: 'warning' }).logLevel).toBe('warn');
    expect(loadConfig({ LOG_LEVEL: 'critical' }).logLevel).toBe('fatal');
  });

  it('picks the log format by the terminal unless LOG_FORMAT says json or pretty', () => {
    expect(loadConfig({}).logFormat).toBe('auto');
    expect(loadConfig({ LOG_FORMAT: 'json' }).logFormat).toBe('json');
    expect(loadConfig({ LOG_FORMAT: 'pretty' }).logFormat).toBe('pretty');
  });

  it.each([
    [{ PORT: 'abc' }, 'PORT', /whole number/],
    [{ PORT: '70000' }, 'PORT', /between/],
    [{ DB_CONNECTION: 'postgres' }, 'DB_CONNECTION', /mysql/],
    [{ DB_CONNECTION: 'mysql', DB_PORT: '0' }, 'DB_PORT', undefined],
    [{ APP_ROLE: 'scheduler' }, 'APP_ROLE', /api, worker, all/],
    [{ APP_DEBUG: 'maybe' }, 'APP_DEBUG', /true or false/],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL', undefined],
    [{ LOG_FORMAT: 'xml' }, 'LOG_FORMAT', /auto, json, pretty/],
    [{ TRUST_PROXY: 'true' }, 'TRUST_PROXY', /hops/],
    [{ TRUST_PROXY: '-1' }, 'TRUST_PROXY', /hops/],
    [{ QUOTA_TIMEZONE: 'Mars/Olympus' }, 'QUOTA_TIMEZONE', /IANA/],
    [{ QUOTA_STATS_TTL: '-5' }, 'QUOTA_STATS_TTL', undefined],
    [{ JWT_EXPIRES_IN: 'forever' }, 'JWT_EXPIRES_IN', undefined],
    [{ BODY_LIMIT: '10' }, 'BODY_LIMIT', undefined],
    [{ CORS_ORIGINS: 'not an origin' }, 'CORS_ORIGINS', undefined],
    [{ REDIS_HOST: 'localhost', REDIS_PREFIX: 'has space' }, 'REDIS_PREFIX', undefined],
    [{ REDIS_HOST: 'localhost', REDIS_DB: '99' }, 'REDIS_DB', undefined],
    [{ ADMIN_EMAIL: 'root@example.com' }, 'ADMIN_PASSWORD', /required/],
    [{ ADMIN_PASSWORD: 'a-long-admin-password' }, 'ADMIN_EMAIL', /required/],
    [{ ADMIN_EMAIL: 'root@example.com', ADMIN_PASSWORD: 'short' }, 'ADMIN_PASSWORD', /12/],
    [{ APP_URL: 'ftp://x' }, 'APP_URL', undefined],
    [{ LOGIN_MAX_FAILURES: '0' }, 'LOGIN_MAX_FAILURES', /between/],
    [{ LOGIN_FAILURE_WINDOW: 'soon' }, 'LOGIN_FAILURE_WINDOW', /duration/],
    [{ LOGIN_LOCK_DURATION: '2d' }, 'LOGIN_LOCK_DURATION', /duration/],
  ])('refuses %j, naming %s', (env, variable, fragment) => {
    expectConfigError(env, variable, fragment);
  });

  describe('Redis topologies (REDIS_HOST, REDIS_CLUSTER_NODES, REDIS_SENTINELS)', () => {
    it('reads a Cluster from its seed nodes', () => {
      const config = loadConfig({
        REDIS_CLUSTER_NODES: 'redis-0.internal:7000, 10.0.0.7:7001,[::1]:7002',
        REDIS_PASSWORD: 'pw',
        REDIS_PREFIX: 'quota-eu',
      });
      expect(config.redis).toEqual({
        topology: {
          kind: 'cluster',
          nodes: [
            { host: 'redis-0.internal', port: 7000 },
            { host: '10.0.0.7', port: 7001 },
            { host: '::1', port: 7002 },
          ],
        },
        password: 'pw',
        db: 0,
        prefix: 'quota-eu',
      });
    });

    it('reads a Sentinel set with its master name and optional password', () => {
      const config = loadConfig({
        REDIS_SENTINELS: 's1:26379,s2:26379,s3:26380',
        REDIS_SENTINEL_NAME: 'mymaster',
        REDIS_SENTINEL_PASSWORD: 'sentinel-pw',
        REDIS_DB: '3',
      });
      expect(config.redis).toEqual({
        topology: {
          kind: 'sentinel',
          sentinels: [
            { host: 's1', port: 26379 },
            { host: 's2', port: 26379 },
            { host: 's3', port: 26380 },
          ],
          name: 'mymaster',
          sentinelPassword: 'sentinel-pw',
        },
        password: undefined,
        db: 3,
        prefix: 'quota',
      });
      expect(loadConfig({ REDIS_SENTINELS: 's1:26379', REDIS_SENTINEL_NAME: 'm' }).redis?.topology).toMatchObject({
        sentinelPassword: undefined,
      });
    });

    it('refuses more than one topology, naming the variables set', () => {
      expectConfigError(
        { REDIS_HOST: 'cache', REDIS_CLUSTER_NODES: 'a:7000' },
        'REDIS_HOST, REDIS_CLUSTER_NODES',
        /set only one of REDIS_HOST, REDIS_CLUSTER_NODES and REDIS_SENTINELS/,
      );
      expectConfigError(
        { REDIS_CLUSTER_NODES: 'a:7000', REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_NAME: 'm' },
        'REDIS_CLUSTER_NODES, REDIS_SENTINELS',
      );
      expectConfigError(
        { REDIS_HOST: 'cache', REDIS_CLUSTER_NODES: 'a:7000', REDIS_SENTINELS: 's:26379' },
        'REDIS_HOST, REDIS_CLUSTER_NODES, REDIS_SENTINELS',
      );
    });

    it.each([
      ['REDIS_CLUSTER_NODES', 'a:7000,b'],
      ['REDIS_CLUSTER_NODES', 'a:70000'],
      ['REDIS_CLUSTER_NODES', 'a:0'],
      ['REDIS_CLUSTER_NODES', 'a:7000,,b:7001'],
      ['REDIS_CLUSTER_NODES', 'redis://a:7000'],
      ['REDIS_SENTINELS', 's1 26379'],
    ])('refuses %s=%s with one line naming it', (variable, value) => {
      expectConfigError({ [variable]: value, REDIS_SENTINEL_NAME: 'm' }, variable, /comma-separated list of host:port/);
    });

    it('needs REDIS_SENTINEL_NAME with sentinels, and sentinel settings need sentinels', () => {
      expectConfigError({ REDIS_SENTINELS: 's1:26379' }, 'REDIS_SENTINEL_NAME', /required with REDIS_SENTINELS/);
      expectConfigError(
        { REDIS_HOST: 'cache', REDIS_SENTINEL_NAME: 'm' },
        'REDIS_SENTINEL_NAME',
        /without REDIS_SENTINELS/,
      );
      expectConfigError({ REDIS_SENTINEL_PASSWORD: 'pw' }, 'REDIS_SENTINEL_PASSWORD', /without REDIS_SENTINELS/);
    });

    it('refuses REDIS_DB other than 0 on a Cluster and REDIS_PORT beside a node list', () => {
      expectConfigError({ REDIS_CLUSTER_NODES: 'a:7000', REDIS_DB: '1' }, 'REDIS_DB', /only database 0/);
      expect(loadConfig({ REDIS_CLUSTER_NODES: 'a:7000', REDIS_DB: '0' }).redis?.db).toBe(0);
      expectConfigError({ REDIS_CLUSTER_NODES: 'a:7000', REDIS_PORT: '7000' }, 'REDIS_PORT', /host:port there/);
      expectConfigError(
        { REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_NAME: 'm', REDIS_PORT: '6379' },
        'REDIS_PORT',
        /REDIS_SENTINELS/,
      );
    });

    it('applies REDIS_TLS to every topology, and refuses it without one', () => {
      const cluster = loadConfig({ REDIS_CLUSTER_NODES: 'a:7000', REDIS_TLS: 'true' });
      expect(cluster.redis?.tls).toMatchObject({ rejectUnauthorized: true });
      const sentinel = loadConfig({ REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_NAME: 'm', REDIS_TLS: 'true' });
      expect(sentinel.redis?.tls).toMatchObject({ rejectUnauthorized: true });
      expectConfigError({ REDIS_TLS: 'true' }, 'REDIS_TLS', /REDIS_HOST, REDIS_CLUSTER_NODES or REDIS_SENTINELS/);
    });
  });

  describe('encrypted connections (DB_SSL*, REDIS_TLS*)', () => {
    const mysql = { DB_CONNECTION: 'mysql' };
    const redis = { REDIS_HOST: 'cache.internal' };
    const production = {
      APP_ENV: 'production',
      JWT_SECRET: STRONG_SECRET,
      DB_CONNECTION: 'mysql',
      DB_HOST: 'db.internal',
      DB_DATABASE: 'quota',
      DB_USERNAME: 'quota',
    };
    let dir: string;
    let caFile: string;

    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'quota-config-tls-'));
      caFile = join(dir, 'ca.pem');
      writeFileSync(caFile, CA_PEM);
      writeFileSync(
        join(dir, 'key.pem'),
        '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49\n-----END PRIVATE KEY-----\n',
      );
      writeFileSync(
        join(dir, 'garbled.pem'),
        '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n',
      );
    });
    afterAll(() => {
      rmSync(dir, { recursive: true, force: true });
    });

    it('are plain unless asked for', () => {
      const config = loadConfig({ ...mysql, ...redis });
      expect(config.database.kind === 'mysql' && config.database.tls).toBeUndefined();
      expect(config.redis?.tls).toBeUndefined();
      expect(loadConfig({ ...mysql, ...redis, DB_SSL: 'false', REDIS_TLS: 'false' }).redis?.tls).toBeUndefined();
    });

    it('DB_SSL=true and REDIS_TLS=true verify against the built-in CAs', () => {
      const config = loadConfig({ ...mysql, ...redis, DB_SSL: 'true', REDIS_TLS: 'true' });
      const verified = { ca: undefined, caFile: undefined, rejectUnauthorized: true };
      expect(config.database).toMatchObject({ kind: 'mysql', tls: verified });
      expect(config.redis?.tls).toEqual(verified);
    });

    it('reads the CA files at start-up; a CA alone switches TLS on', () => {
      const config = loadConfig({ ...mysql, ...redis, DB_SSL: 'true', DB_SSL_CA: caFile, REDIS_TLS_CA: caFile });
      const withCa = { ca: CA_PEM, caFile, rejectUnauthorized: true };
      expect(config.database).toMatchObject({ tls: withCa });
      expect(config.redis?.tls).toEqual(withCa);
    });

    it('works in production with verification on', () => {
      const config = loadConfig({ ...production, ...redis, DB_SSL_CA: caFile, REDIS_TLS: 'true' });
      expect(config.database).toMatchObject({ tls: { ca: CA_PEM, rejectUnauthorized: true } });
      expect(config.redis?.tls).toMatchObject({ rejectUnauthorized: true });
    });

    it('lets development switch certificate verification off, never production', () => {
      const config = loadConfig({
        ...mysql,
        ...redis,
        DB_SSL: 'true',
        DB_SSL_REJECT_UNAUTHORIZED: 'false',
        REDIS_TLS: 'true',
        REDIS_TLS_REJECT_UNAUTHORIZED: 'false',
      });
      expect(config.database).toMatchObject({ tls: { rejectUnauthorized: false } });
      expect(config.redis?.tls).toMatchObject({ rejectUnauthorized: false });
      expectConfigError(
        { ...production, DB_SSL: 'true', DB_SSL_REJECT_UNAUTHORIZED: 'false' },
        'DB_SSL_REJECT_UNAUTHORIZED',
        /refused in production.*DB_SSL_CA/,
      );
      expectConfigError(
        { ...production, ...redis, REDIS_TLS: 'true', REDIS_TLS_REJECT_UNAUTHORIZED: 'false' },
        'REDIS_TLS_REJECT_UNAUTHORIZED',
        /refused in production.*REDIS_TLS_CA/,
      );
      expect(loadConfig({ ...production, DB_SSL: 'true', DB_SSL_REJECT_UNAUTHORIZED: 'true' }).database).toMatchObject({
        tls: { rejectUnauthorized: true },
      });
    });

    it.each([
      [{ DB_SSL: 'yes please' }, 'DB_SSL', /true or false/],
      [{ DB_SSL: 'true', DB_SSL_REJECT_UNAUTHORIZED: 'nope' }, 'DB_SSL_REJECT_UNAUTHORIZED', /true or false/],
      [{ DB_SSL: 'false', DB_SSL_CA: '/etc/ssl/ca.pem' }, 'DB_SSL_CA', /DB_SSL=false/],
      [{ DB_SSL_REJECT_UNAUTHORIZED: 'false' }, 'DB_SSL_REJECT_UNAUTHORIZED', /unless DB_SSL=true/],
      [{ DB_SSL_CA: '/nonexistent/quota-ca.pem' }, 'DB_SSL_CA', /cannot read .*\/nonexistent\/quota-ca\.pem.*ENOENT/],
      [{ REDIS_TLS: 'on-ish' }, 'REDIS_TLS', /true or false/],
      [{ REDIS_TLS: 'false', REDIS_TLS_CA: '/etc/ssl/ca.pem' }, 'REDIS_TLS_CA', /REDIS_TLS=false/],
      [{ REDIS_TLS_REJECT_UNAUTHORIZED: 'false' }, 'REDIS_TLS_REJECT_UNAUTHORIZED', /unless REDIS_TLS=true/],
      [{ REDIS_TLS_CA: '/nonexistent/quota-ca.pem' }, 'REDIS_TLS_CA', /ENOENT/],
    ])('refuses %j, naming %s', (env, variable, fragment) => {
      expectConfigError({ ...mysql, ...redis, ...env }, variable, fragment);
    });

    it('refuses a CA path that is a directory, a key, or not a certificate', () => {
      expectConfigError({ ...mysql, DB_SSL_CA: dir }, 'DB_SSL_CA', /EISDIR/);
      expectConfigError({ ...mysql, DB_SSL_CA: join(dir, 'key.pem') }, 'DB_SSL_CA', /no PEM certificate/);
      expectConfigError({ ...mysql, DB_SSL_CA: join(dir, 'garbled.pem') }, 'DB_SSL_CA', /cannot be parsed/);
      expectConfigError({ ...redis, REDIS_TLS_CA: join(dir, 'key.pem') }, 'REDIS_TLS_CA', /no PEM certificate/);
    });

    it('refuses TLS settings for a connection that does not exist', () => {
      expectConfigError({ DB_SSL: 'true' }, 'DB_SSL', /MySQL only/);
      expectConfigError({ DB_SSL_CA: caFile }, 'DB_SSL_CA', /MySQL only/);
      expectConfigError({ REDIS_TLS: 'true' }, 'REDIS_TLS', /REDIS_HOST/);
      expectConfigError({ REDIS_TLS_CA: caFile }, 'REDIS_TLS_CA', /REDIS_HOST/);
    });
  });

  describe('in production', () => {
    const production = { APP_ENV: 'production', JWT_SECRET: STRONG_SECRET };

    it('requires JWT_SECRET', () => {
      expectConfigError({ APP_ENV: 'production' }, 'JWT_SECRET', /required/);
    });

    it.each(['secret', 'changeme', 'your-secret-key', 'short-but-random-9f8a', 'a'.repeat(40)])(
      'refuses the weak or default JWT_SECRET %s',
      (secret) => {
        expectConfigError({ APP_ENV: 'production', JWT_SECRET: secret }, 'JWT_SECRET');
      },
    );

    it('requires the MySQL connection to be named explicitly', () => {
      expectConfigError({ ...production, DB_CONNECTION: 'mysql' }, 'DB_HOST', /required/);
      expectConfigError({ ...production, DB_CONNECTION: 'mysql', DB_HOST: 'db' }, 'DB_DATABASE', /required/);
    });

    it('does not run migrations at start-up unless asked to', () => {
      const env = { ...production, DB_CONNECTION: 'mysql', DB_HOST: 'db', DB_DATABASE: 'q', DB_USERNAME: 'u' };
      expect(loadConfig(env).migrationsRun).toBe(false);
      expect(loadConfig({ ...env, DB_MIGRATE_ON_START: 'true' }).migrationsRun).toBe(true);
    });
  });
});
