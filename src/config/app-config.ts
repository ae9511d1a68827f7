import { randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseByteSize, parseDuration } from './units';

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`${variable}: ${problem}`);
    this.name = 'ConfigError';
  }
}

export type AppRole = 'api' | 'worker' | 'all';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
/** `auto`: readable lines when standard output is a terminal, JSON lines otherwise. */
export type LogFormat = 'auto' | 'json' | 'pretty';

export interface EmbeddedDatabaseConfig {
  readonly kind: 'sqlite';
  readonly path: string;
}

/** TLS for a connection to MySQL (DB_SSL*) or Redis (REDIS_TLS*); absent means plain TCP. */
export interface TlsConfig {
  /** PEM text of the authorities to trust instead of Node's built-in list, read from the file at start-up. */
  readonly ca: string | undefined;
  /** The file the CA came from, for the start-up line (a path, never the certificate). */
  readonly caFile: string | undefined;
  /** False (development only) encrypts without checking who answers. */
  readonly rejectUnauthorized: boolean;
}

export interface MysqlDatabaseConfig {
  readonly kind: 'mysql';
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly username: string;
  readonly password: string;
  readonly poolSize: number;
  /** Connections of the consume/refund batch's own pool, the only one allowing several statements per query. */
  readonly batchPoolSize: number;
  readonly tls: TlsConfig | undefined;
}

export type DatabaseConfig = EmbeddedDatabaseConfig | MysqlDatabaseConfig;

export interface RedisNode {
  readonly host: string;
  readonly port: number;
}

/**
 * Where Redis is: one server (REDIS_HOST), a Redis Cluster reached through seed nodes
 * (REDIS_CLUSTER_NODES), or a master found through Sentinel (REDIS_SENTINELS + REDIS_SENTINEL_NAME).
 */
export type RedisTopology =
  | ({ readonly kind: 'single' } & RedisNode)
  | { readonly kind: 'cluster'; readonly nodes: readonly RedisNode[] }
  | {
      readonly kind: 'sentinel';
      readonly sentinels: readonly RedisNode[];
      /** The master's name in the sentinels' `sentinel monitor` line. */
      readonly name: string;
      /** For the sentinels themselves (their `requirepass`); REDIS_PASSWORD is the data nodes'. */
      readonly sentinelPassword: string | undefined;
    };

export interface RedisConfig {
  readonly topology: RedisTopology;
  /** The data nodes' password (AUTH), whatever the topology. */
  readonly password: string | undefined;
  readonly db: number;
  /** Namespace for every key this deployment writes, so several deployments can share one Redis. */
  readonly prefix: string;
  readonly tls: TlsConfig | undefined;
}

export interface AnomalyConfig {
  /** Length of the per-member consumption window compared with its baseline and cohort. */
  readonly windowSeconds: number;
  /** Standard deviations above the member's own exponentially weighted mean that count as a spike. */
  readonly zScore: number;
  /** Windows a member must have been observed for before its own baseline is trusted. */
  readonly minBaselineWindows: number;
  /** Units a window must reach before it can be called unusual at all (ignores tiny members). */
  readonly minUnits: number;
  /** A window this many times the cohort's mean per active member is a cohort outlier. */
  readonly cohortFactor: number;
  /** Closed member windows a membership type needs before its cohort mean is trusted. */
  readonly cohortMinSamples: number;
  /** A burst: at least burstCount consumes of one member within burstSeconds. */
  readonly burstCount: number;
  readonly burstSeconds: number;
  /** Ledger rows older than this when processed (a backlog) feed the stats but not detection. */
  readonly maxAgeSeconds: number;
}

export interface AnalyticsConfig {
  /** How often the tail processor runs (0 disables the timer; it can still be run directly). */
  readonly intervalMs: number;
  /** Rows younger than this are left for a later run: auto-increment ids can commit out of order. */
  readonly safetyLagMs: number;
  readonly batchSize: number;
  /**
   * Ids the watermark passed while their rows were not visible (a transaction still open, or
   * rolled back) are looked for again on every run for this long, then given up.
   */
  readonly gapMaxAgeMs: number;
  /** How often quota_type_totals is checked against `members` and corrected (0: never). */
  readonly reconcileIntervalMs: number;
  readonly anomaly: AnomalyConfig;
  /** Stored anomalies older than this many days are deleted (0 keeps them for ever). */
  readonly anomalyRetentionDays: number;
}

export interface WebhooksConfig {
  /** `http://` destinations are accepted (development and tests); otherwise `https://` only. */
  readonly allowHttp: boolean;
  /** Destinations on loopback, private, link-local or metadata addresses are accepted (development and tests). */
  readonly allowPrivateNetworks: boolean;
  /** The first retry's delay; every later delay of the schedule scales with it. */
  readonly retryBaseMs: number;
  /** How long one attempt may take (connect, send, response head and body). */
  readonly timeoutMs: number;
  /** How often each worker looks for deliveries that are due. */
  readonly pollIntervalMs: number;
  /** Events older than this many days, with no delivery left to send, are deleted; 0 keeps them. */
  readonly retentionDays: number;
}

/** The whole runtime configuration, read once from the environment and validated at boot. */
export class AppConfig {
  readonly env!: string;
  readonly isProduction!: boolean;
  readonly debug!: boolean;
  readonly url!: string | undefined;
  readonly host!: string;
  readonly port!: number;
  readonly role!: AppRole;
  readonly logLevel!: LogLevel;
  readonly logFormat!: LogFormat;
  readonly database!: DatabaseConfig;
  /** Apply pending migrations at start-up (embedded default, and any non-production env). */
  readonly migrationsRun!: boolean;
  readonly redis!: RedisConfig | undefined;
  readonly jwt!: { readonly secret: string; readonly expiresInSeconds: number; readonly secretGenerated: boolean };
  readonly corsOrigins!: readonly string[];
  readonly trustProxyHops!: number;
  readonly bodyLimitBytes!: number;
  readonly bulkBodyLimitBytes!: number;
  readonly throttle!: { readonly ttlSeconds: number; readonly limit: number; readonly loginLimit: number };
  /** Per-account brute-force lockout, kept in the database so it holds across instances and Redis outages. */
  readonly login!: {
    readonly maxFailures: number;
    readonly failureWindowSeconds: number;
    readonly lockSeconds: number;
  };
  readonly quota!: {
    readonly statsTtlSeconds: number;
    readonly timezone: string;
    /** How often each instance gives back the units of holds past their time. */
    readonly holdExpiryIntervalMs: number;
  };
  /**
   * Background operations: chunk size, chunk runners per worker process, how often lost jobs are
   * looked for, BullMQ lock (also a chunk claim's lease), reset tick.
   */
  readonly jobs!: {
    readonly chunkSize: number;
    readonly concurrency: number;
    readonly sweepIntervalMs: number;
    readonly lockDurationMs: number;
    readonly resetTickMs: number;
  };
  /** Stats rollups and anomaly detection (the asynchronous tail of the ledger). */
  readonly analytics!: AnalyticsConfig;
  /** Webhook deliveries (contract §12). */
  readonly webhooks!: WebhooksConfig;
  /** The write freeze (contract §15): how often each instance reads the switch (it obeys within 2 s). */
  readonly maintenance!: { readonly pollIntervalMs: number };
  readonly bootstrapAdmin!: { readonly email: string; readonly password: string } | undefined;
  readonly shutdown!: { readonly drainDelayMs: number; readonly timeoutMs: number };
  /** When set, GET /metrics requires `Authorization: Bearer <token>`. */
  readonly metricsToken!: string | undefined;
  /** Swagger UI at /api/docs and the document at /api/docs-json (API_DOCS_ENABLED; off in production by default). */
  readonly apiDocsEnabled!: boolean;

  constructor(values: AppConfig) {
    Object.assign(this, values);
    Object.freeze(this);
  }
}

type Env = Readonly<Record<string, string | undefined>>;

const LOG_LEVELS: Record<string, LogLevel> = {
  fatal: 'fatal',
  emergency: 'fatal',
  alert: 'fatal',
  critical: 'fatal',
  error: 'error',
  warning: 'warn',
  warn: 'warn',
  notice: 'info',
  info: 'info',
  debug: 'debug',
  trace: 'trace',
  silent: 'silent',
};

/** Secrets that ship in examples and tutorials; a production deployment must never run with one. */
const KNOWN_DEFAULT_SECRETS = new Set([
  'secret',
  'changeme',
  'change-me',
  'jwt_secret',
  'jwt-secret',
  'your-secret-key',
  'your_jwt_secret',
  'replace-with-a-long-random-secret-of-at-least-32-characters',
]);
const MIN_PRODUCTION_SECRET_LENGTH = 32;

class EnvReader {
  constructor(private readonly env: Env) {}

  raw(name: string): string | undefined {
    const value = this.env[name];
    if (value === undefined) return undefined;
    const trimmed = value.trim();
    return trimmed === '' ? undefined : trimmed;
  }

  string(name: string, fallback: string): string {
    return this.raw(name) ?? fallback;
  }

  required(name: string): string {
    const value = this.raw(name);
    if (value === undefined) throw new ConfigError(name, 'is required');
    return value;
  }

  integer(name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (!/^-?\d+$/.test(value)) throw new ConfigError(name, `must be a whole number, got "${value}"`);
    const parsed = Number(value);
    if (parsed < min || parsed > max) {
      throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
    }
    return parsed;
  }

  boolean(name: string, fallback: boolean): boolean {
    const value = this.raw(name)?.toLowerCase();
    if (value === undefined) return fallback;
    if (['true', '1', 'yes', 'on'].includes(value)) return true;
    if (['false', '0', 'no', 'off'].includes(value)) return false;
    throw new ConfigError(name, `must be true or false, got "${value}"`);
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (!(allowed as readonly string[]).includes(value)) {
      throw new ConfigError(name, `must be one of ${allowed.join(', ')}, got "${value}"`);
    }
    return value as T;
  }

  parsed<T>(name: string, fallback: T, parse: (value: string) => T | undefined, expected: string): T {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const result = parse(value);
    if (result === undefined) throw new ConfigError(name, `must be ${expected}, got "${value}"`);
    return result;
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * The CA file is read once here, so a wrong path stops the process at start-up with the variable's
 * name instead of failing every connection later with a driver message.
 */
function readCaFile(variable: string, path: string): string {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new ConfigError(variable, `cannot read the CA file "${path}" (${code})`);
  }
  const certificates = pem.match(PEM_CERTIFICATE);
  if (!certificates) {
    throw new ConfigError(variable, `"${path}" holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  }
  for (const certificate of certificates) {
    try {
      new X509Certificate(certificate);
    } catch {
      throw new ConfigError(variable, `"${path}" holds a certificate that cannot be parsed`);
    }
  }
  return pem;
}

interface TlsVariables {
  readonly enabled: string;
  readonly ca: string;
  readonly rejectUnauthorized: string;
}

/**
 * TLS is on with `<enabled>=true`, or when only the CA is named: a CA means nothing without TLS, and
 * silently connecting in plain text would be the dangerous reading of that setting. Contradictions
 * (`<enabled>=false` with a CA, or switching verification off while TLS is off) are refused.
 * Turning verification off is refused in production, where it would let anyone on the path answer.
 */
function readTls(read: EnvReader, names: TlsVariables, isProduction: boolean): TlsConfig | undefined {
  const explicit = read.raw(names.enabled) === undefined ? undefined : read.boolean(names.enabled, false);
  const caFile = read.raw(names.ca);
  const rejectUnauthorized = read.boolean(names.rejectUnauthorized, true);
  if (!rejectUnauthorized && isProduction) {
    throw new ConfigError(
      names.rejectUnauthorized,
      `is refused in production: it accepts any certificate; name the server's CA in ${names.ca} instead`,
    );
  }
  if (explicit === false && caFile !== undefined) {
    throw new ConfigError(
      names.ca,
      `is set but ${names.enabled}=false; set ${names.enabled}=true or remove ${names.ca}`,
    );
  }
  const enabled = explicit ?? caFile !== undefined;
  if (!enabled) {
    if (!rejectUnauthorized) {
      throw new ConfigError(names.rejectUnauthorized, `has no effect unless ${names.enabled}=true`);
    }
    return undefined;
  }
  return {
    ca: caFile === undefined ? undefined : readCaFile(names.ca, caFile),
    caFile,
    rejectUnauthorized,
  };
}

const DB_TLS: TlsVariables = {
  enabled: 'DB_SSL',
  ca: 'DB_SSL_CA',
  rejectUnauthorized: 'DB_SSL_REJECT_UNAUTHORIZED',
};
const REDIS_TLS: TlsVariables = {
  enabled: 'REDIS_TLS',
  ca: 'REDIS_TLS_CA',
  rejectUnauthorized: 'REDIS_TLS_REJECT_UNAUTHORIZED',
};

/** The variable that switched TLS on, for a refusal that names it. */
function tlsSwitch(read: EnvReader, names: TlsVariables): string {
  return read.raw(names.enabled) === undefined ? names.ca : names.enabled;
}

function readDatabase(read: EnvReader, isProduction: boolean): DatabaseConfig {
  const connection = read.oneOf('DB_CONNECTION', ['mysql', 'mariadb', 'sqlite'], 'sqlite');
  const tls = readTls(read, DB_TLS, isProduction);
  if (connection === 'sqlite') {
    if (tls) {
      throw new ConfigError(tlsSwitch(read, DB_TLS), 'applies to MySQL only; set DB_CONNECTION=mysql');
    }
    return { kind: 'sqlite', path: read.string('DB_DATABASE', 'data/quota.sqlite') };
  }
  const needed = (name: string, fallback: string): string =>
    isProduction ? read.required(name) : read.string(name, fallback);
  const poolSize = read.integer('DB_POOL_SIZE', 10, 1, 500);
  return {
    kind: 'mysql',
    host: needed('DB_HOST', '127.0.0.1'),
    port: read.integer('DB_PORT', 3306, 1, 65535),
    database: needed('DB_DATABASE', 'quota'),
    username: needed('DB_USERNAME', 'root'),
    password: read.raw('DB_PASSWORD') ?? '',
    poolSize,
    batchPoolSize: read.integer('DB_BATCH_POOL_SIZE', poolSize, 1, 500),
    tls,
  };
}

/** `host:port,host:port`: one clear line naming the variable for anything else. */
function readNodeList(read: EnvReader, name: string): RedisNode[] | undefined {
  const value = read.raw(name);
  if (value === undefined) return undefined;
  const nodes = value.split(',').map((entry) => {
    const match = /^([^\s:,]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/.exec(entry.trim());
    const port = match ? Number(match[2]) : 0;
    if (!match || port < 1 || port > 65535) {
      throw new ConfigError(name, `must be a comma-separated list of host:port (port 1-65535), got "${entry.trim()}"`);
    }
    return { host: match[1].replace(/^\[(.*)\]$/, '$1'), port };
  });
  return nodes;
}

function readRedisTopology(read: EnvReader): RedisTopology | undefined {
  const host = read.raw('REDIS_HOST');
  const clusterNodes = readNodeList(read, 'REDIS_CLUSTER_NODES');
  const sentinels = readNodeList(read, 'REDIS_SENTINELS');
  const chosen = [
    host === undefined ? undefined : 'REDIS_HOST',
    clusterNodes === undefined ? undefined : 'REDIS_CLUSTER_NODES',
    sentinels === undefined ? undefined : 'REDIS_SENTINELS',
  ].filter((name) => name !== undefined);
  if (chosen.length > 1) {
    throw new ConfigError(chosen.join(', '), 'set only one of REDIS_HOST, REDIS_CLUSTER_NODES and REDIS_SENTINELS');
  }
  const sentinelOnly = ['REDIS_SENTINEL_NAME', 'REDIS_SENTINEL_PASSWORD'].find((name) => read.raw(name) !== undefined);
  if (sentinels === undefined && sentinelOnly !== undefined) {
    throw new ConfigError(sentinelOnly, 'has no effect without REDIS_SENTINELS');
  }
  if (host !== undefined) return { kind: 'single', host, port: read.integer('REDIS_PORT', 6379, 1, 65535) };
  if (read.raw('REDIS_PORT') !== undefined && (clusterNodes ?? sentinels) !== undefined) {
    throw new ConfigError('REDIS_PORT', `has no effect with ${chosen[0]}; give each node as host:port there`);
  }
  if (clusterNodes !== undefined) return { kind: 'cluster', nodes: clusterNodes };
  if (sentinels !== undefined) {
    const name = read.raw('REDIS_SENTINEL_NAME');
    if (name === undefined) throw new ConfigError('REDIS_SENTINEL_NAME', 'is required with REDIS_SENTINELS');
    return { kind: 'sentinel', sentinels, name, sentinelPassword: read.raw('REDIS_SENTINEL_PASSWORD') };
  }
  return undefined;
}

function readRedis(read: EnvReader, isProduction: boolean): RedisConfig | undefined {
  const topology = readRedisTopology(read);
  const tls = readTls(read, REDIS_TLS, isProduction);
  if (topology === undefined) {
    if (tls) {
      throw new ConfigError(
        tlsSwitch(read, REDIS_TLS),
        'has no effect without REDIS_HOST, REDIS_CLUSTER_NODES or REDIS_SENTINELS',
      );
    }
    return undefined;
  }
  const prefix = read.string('REDIS_PREFIX', 'quota');
  if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(prefix)) {
    throw new ConfigError('REDIS_PREFIX', 'must be 1-64 characters of letters, digits, "_", ".", ":" or "-"');
  }
  const db = read.integer('REDIS_DB', 0, 0, 15);
  if (topology.kind === 'cluster' && db !== 0) {
    throw new ConfigError('REDIS_DB', 'must be 0 with REDIS_CLUSTER_NODES (Redis Cluster has only database 0)');
  }
  return { topology, password: read.raw('REDIS_PASSWORD'), db, prefix, tls };
}

function readJwt(read: EnvReader, isProduction: boolean, randomSecret: () => string) {
  const expiresInSeconds = read.parsed(
    'JWT_EXPIRES_IN',
    3600,
    (v) => {
      const seconds = parseDuration(v);
      return seconds !== undefined && seconds >= 60 && seconds <= 7 * 86400 ? seconds : undefined;
    },
    'a duration between 60s and 7d such as 3600, 15m or 1h',
  );
  const secret = read.raw('JWT_SECRET');
  if (secret === undefined) {
    if (isProduction) throw new ConfigError('JWT_SECRET', 'is required in production');
    return { secret: randomSecret(), expiresInSeconds, secretGenerated: true };
  }
  if (isProduction) {
    if (KNOWN_DEFAULT_SECRETS.has(secret.toLowerCase())) {
      throw new ConfigError('JWT_SECRET', 'is a published default value; set a long random secret');
    }
    if (secret.length < MIN_PRODUCTION_SECRET_LENGTH || new Set(secret).size < 10) {
      throw new ConfigError(
        'JWT_SECRET',
        `is too weak for production; use at least ${MIN_PRODUCTION_SECRET_LENGTH} random characters`,
      );
    }
  }
  return { secret, expiresInSeconds, secretGenerated: false };
}

function isValidTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

function readCorsOrigins(read: EnvReader): string[] {
  const value = read.raw('CORS_ORIGINS');
  if (value === undefined) return [];
  const origins = value
    .split(',')
    .map((o) => o.trim())
    .filter((o) => o !== '');
  for (const origin of origins) {
    if (origin !== '*' && !/^https?:\/\/[^\s/]+$/.test(origin)) {
      throw new ConfigError('CORS_ORIGINS', `"${origin}" is not an origin like https://app.example.com or *`);
    }
  }
  return origins;
}

function readBootstrapAdmin(read: EnvReader) {
  const email = read.raw('ADMIN_EMAIL');
  const password = read.raw('ADMIN_PASSWORD');
  if (email === undefined && password === undefined) return undefined;
  if (email === undefined) throw new ConfigError('ADMIN_EMAIL', 'is required when ADMIN_PASSWORD is set');
  if (password === undefined) throw new ConfigError('ADMIN_PASSWORD', 'is required when ADMIN_EMAIL is set');
  if (!/^[^\s@]+@[^\s@]+$/.test(email)) throw new ConfigError('ADMIN_EMAIL', 'must be an email address');
  if (password.length < 12) throw new ConfigError('ADMIN_PASSWORD', 'must be at least 12 characters');
  return { email, password };
}

function readLockout(read: EnvReader) {
  const duration = (name: string, fallback: number) =>
    read.parsed(
      name,
      fallback,
      (v) => {
        const seconds = parseDuration(v);
        return seconds !== undefined && seconds >= 1 && seconds <= 86400 ? seconds : undefined;
      },
      'a duration between 1s and 1d such as 900, 15m or 1h',
    );
  return {
    maxFailures: read.integer('LOGIN_MAX_FAILURES', 5, 1, 1000),
    failureWindowSeconds: duration('LOGIN_FAILURE_WINDOW', 900),
    lockSeconds: duration('LOGIN_LOCK_DURATION', 900),
  };
}

function readAnalytics(read: EnvReader): AnalyticsConfig {
  const decimal = (name: string, fallback: number, min: number, max: number) =>
    read.parsed(
      name,
      fallback,
      (v) => (/^\d+(\.\d+)?$/.test(v) && Number(v) >= min && Number(v) <= max ? Number(v) : undefined),
      `a number between ${min} and ${max}`,
    );
  return {
    intervalMs: read.integer('QUOTA_ANALYTICS_INTERVAL_MS', 2000, 0, 3_600_000),
    safetyLagMs: read.integer('QUOTA_ANALYTICS_LAG_MS', 5000, 0, 600_000),
    batchSize: read.integer('QUOTA_ANALYTICS_BATCH', 5000, 1, 100_000),
    gapMaxAgeMs: read.integer('QUOTA_ANALYTICS_GAP_MAX_AGE_MS', 3_600_000, 0, 7 * 86_400_000),
    reconcileIntervalMs: read.integer('QUOTA_ANALYTICS_RECONCILE_MS', 600_000, 0, 86_400_000),
    anomaly: {
      windowSeconds: read.integer('QUOTA_ANOMALY_WINDOW', 300, 10, 86400),
      zScore: decimal('QUOTA_ANOMALY_ZSCORE', 4, 1, 100),
      minBaselineWindows: read.integer('QUOTA_ANOMALY_MIN_WINDOWS', 6, 1, 10_000),
      minUnits: read.integer('QUOTA_ANOMALY_MIN_UNITS', 10, 1, 1_000_000_000),
      cohortFactor: decimal('QUOTA_ANOMALY_COHORT_FACTOR', 10, 1, 10_000),
      cohortMinSamples: read.integer('QUOTA_ANOMALY_COHORT_MIN_SAMPLES', 20, 1, 1_000_000),
      burstCount: read.integer('QUOTA_ANOMALY_BURST_COUNT', 20, 2, 1_000_000),
      burstSeconds: read.integer('QUOTA_ANOMALY_BURST_SECONDS', 10, 1, 3600),
      maxAgeSeconds: read.integer('QUOTA_ANOMALY_MAX_AGE', 3600, 60, 90 * 86400),
    },
    anomalyRetentionDays: read.integer('QUOTA_ANOMALY_RETENTION_DAYS', 90, 0, 3650),
  };
}

function readTrustProxy(read: EnvReader): number {
  const value = read.raw('TRUST_PROXY');
  if (value !== undefined && !/^\d+$/.test(value)) {
    throw new ConfigError('TRUST_PROXY', `must be a number of proxy hops (0, 1, 2, ...), got "${value}"`);
  }
  return read.integer('TRUST_PROXY', 0, 0, 10);
}

/**
 * Reads and validates the environment. Throws a ConfigError naming the first variable that is
 * missing or wrong; nothing else in the service reads the environment.
 */
export function loadConfig(
  env: Env,
  randomSecret: () => string = () => randomBytes(48).toString('base64url'),
): AppConfig {
  const read = new EnvReader(env);
  const appEnv = read.string('APP_ENV', 'local');
  if (!/^[a-z][a-z0-9_-]{0,31}$/.test(appEnv)) {
    throw new ConfigError('APP_ENV', `must be a name such as production, staging, local or testing, got "${appEnv}"`);
  }
  const isProduction = appEnv === 'production';
  const database = readDatabase(read, isProduction);
  const bodyLimitBytes = read.parsed(
    'BODY_LIMIT',
    1024 * 1024,
    (v) => {
      const bytes = parseByteSize(v);
      return bytes !== undefined && bytes >= 1024 && bytes <= 64 * 1024 * 1024 ? bytes : undefined;
    },
    'a size between 1kb and 64mb such as 1mb or 1048576',
  );
  const url = read.raw('APP_URL');
  if (url !== undefined && !/^https?:\/\/\S+$/.test(url)) {
    throw new ConfigError('APP_URL', `must be an http(s) URL, got "${url}"`);
  }
  const timezone = read.string('QUOTA_TIMEZONE', 'UTC');
  if (!isValidTimeZone(timezone)) {
    throw new ConfigError(
      'QUOTA_TIMEZONE',
      `must be an IANA time zone such as UTC or Europe/Berlin, got "${timezone}"`,
    );
  }

  return new AppConfig({
    env: appEnv,
    isProduction,
    debug: read.boolean('APP_DEBUG', false),
    url,
    host: read.string('HOST', '0.0.0.0'),
    port: read.integer('PORT', 3000, 0, 65535),
    role: read.oneOf('APP_ROLE', ['api', 'worker', 'all'], 'all'),
    logLevel: read.parsed(
      'LOG_LEVEL',
      'info',
      (v) => LOG_LEVELS[v.toLowerCase()],
      `one of ${Object.keys(LOG_LEVELS).join(', ')}`,
    ),
    logFormat: read.oneOf('LOG_FORMAT', ['auto', 'json', 'pretty'], 'auto'),
    database,
    migrationsRun: read.boolean('DB_MIGRATE_ON_START', database.kind === 'sqlite' || !isProduction),
    redis: readRedis(read, isProduction),
    jwt: readJwt(read, isProduction, randomSecret),
    corsOrigins: readCorsOrigins(read),
    trustProxyHops: readTrustProxy(read),
    bodyLimitBytes,
    bulkBodyLimitBytes: Math.max(bodyLimitBytes, 4 * 1024 * 1024),
    throttle: {
      ttlSeconds: read.integer('THROTTLE_TTL', 60, 1, 86400),
      limit: read.integer('THROTTLE_LIMIT', 600, 0, 1_000_000),
      loginLimit: read.integer('THROTTLE_LOGIN_LIMIT', 10, 0, 10_000),
    },
    login: readLockout(read),
    quota: {
      statsTtlSeconds: read.integer('QUOTA_STATS_TTL', 300, 0, 86400),
      timezone,
      holdExpiryIntervalMs: read.integer('QUOTA_HOLD_EXPIRY_INTERVAL_MS', 1000, 100, 60_000),
    },
    analytics: readAnalytics(read),
    webhooks: {
      allowHttp: read.boolean('WEBHOOK_ALLOW_HTTP', false),
      allowPrivateNetworks: read.boolean('WEBHOOK_ALLOW_PRIVATE_NETWORKS', false),
      retryBaseMs: read.integer('WEBHOOK_RETRY_BASE_MS', 5000, 1, 3_600_000),
      timeoutMs: read.integer('WEBHOOK_TIMEOUT_MS', 5000, 100, 60_000),
      pollIntervalMs: read.integer('WEBHOOK_POLL_INTERVAL_MS', 1000, 50, 60_000),
      retentionDays: read.integer('WEBHOOK_RETENTION_DAYS', 30, 0, 3650),
    },
    maintenance: { pollIntervalMs: read.integer('MAINTENANCE_POLL_INTERVAL_MS', 1000, 100, 1500) },
    jobs: {
      chunkSize: read.integer('JOBS_CHUNK_SIZE', 10_000, 1, 50_000),
      concurrency: read.integer('JOBS_CONCURRENCY', 2, 1, 16),
      sweepIntervalMs: read.integer('JOBS_SWEEP_INTERVAL_MS', 60_000, 100, 3_600_000),
      lockDurationMs: read.integer('JOBS_LOCK_DURATION_MS', 30_000, 1000, 600_000),
      resetTickMs: read.integer('JOBS_RESET_TICK_MS', 60_000, 1000, 3_600_000),
    },
    bootstrapAdmin: readBootstrapAdmin(read),
    metricsToken: read.raw('METRICS_TOKEN'),
    apiDocsEnabled: read.boolean('API_DOCS_ENABLED', !isProduction),
    shutdown: {
      drainDelayMs: read.integer('SHUTDOWN_DRAIN_DELAY_MS', 0, 0, 120_000),
      timeoutMs: read.integer('SHUTDOWN_TIMEOUT_MS', 25_000, 1000, 600_000),
    },
  });
}
