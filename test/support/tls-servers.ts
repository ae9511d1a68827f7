import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { createConnection } from 'mysql2/promise';
import { freePort } from './service-process';

const MARIADBD = process.env.MARIADBD ?? '/usr/sbin/mariadbd';
const STOP_TIMEOUT_MS = 15_000;

/** A certificate authority, the server certificates it signed, and an unrelated authority. */
export interface Certificates {
  /** The authority that signed the servers' certificates: clients that trust it connect. */
  readonly caFile: string;
  /** Another authority: a client trusting only this one must refuse the servers. */
  readonly otherCaFile: string;
  /** For IP:127.0.0.1 and DNS:localhost. */
  readonly server: KeyPair;
  /** Signed by the same authority for another name only: a client checking names must refuse it. */
  readonly otherName: KeyPair;
}

export interface KeyPair {
  readonly certFile: string;
  readonly keyFile: string;
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 });
}

/** P-256 keys: generated in milliseconds, and both servers and Node accept them. */
const NEW_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
const CA_EXTENSIONS = [
  '-addext',
  'basicConstraints=critical,CA:TRUE',
  '-addext',
  'keyUsage=critical,keyCertSign,cRLSign',
];

function makeAuthority(dir: string, name: string, subject: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  openssl(['req', '-x509', ...NEW_KEY, '-keyout', key, '-out', cert, '-days', '2', '-subj', subject, ...CA_EXTENSIONS]);
  return { cert, key };
}

function signServerCertificate(
  dir: string,
  name: string,
  subjectAltName: string,
  ca: { cert: string; key: string },
): KeyPair {
  const keyFile = join(dir, `${name}.key`);
  const certFile = join(dir, `${name}.pem`);
  const csr = join(dir, `${name}.csr`);
  const extensions = join(dir, `${name}.ext`);
  writeFileSync(
    extensions,
    [
      `subjectAltName=${subjectAltName}`,
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
    ].join('\n'),
  );
  openssl(['req', '-new', ...NEW_KEY, '-keyout', keyFile, '-out', csr, '-subj', `/CN=${name}`]);
  const signing = ['-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '2', '-extfile', extensions];
  openssl(['x509', '-req', '-in', csr, ...signing, '-out', certFile]);
  return { certFile, keyFile };
}

/** A fresh authority per run, so no run depends on files left by another. */
export function makeCertificates(dir: string): Certificates {
  mkdirSync(dir, { recursive: true });
  const ca = makeAuthority(dir, 'ca', '/CN=Quota TLS test CA');
  const other = makeAuthority(dir, 'other-ca', '/CN=Some other authority');
  return {
    caFile: ca.cert,
    otherCaFile: other.cert,
    server: signServerCertificate(dir, 'server', 'IP:127.0.0.1,DNS:localhost', ca),
    otherName: signServerCertificate(dir, 'elsewhere', 'DNS:db.elsewhere.invalid', ca),
  };
}

/**
 * A server process that cannot outlive the test run: a small shell starts it and kills it when its
 * own standard input closes, which the kernel does when the Jest process ends, however it ends
 * (even SIGKILL, where no afterAll runs).
 */
class GuardedServer {
  private readonly shell: ChildProcess;
  private readonly exit: Promise<number | null>;
  private serverPid: number | undefined;

  constructor(command: string, args: readonly string[]) {
    // fd 3 keeps the guard's stdin for the watcher: a background job's own stdin is /dev/null.
    const script = [
      'exec 3<&0',
      '"$@" 3<&- </dev/null & server=$!',
      'echo "$server"',
      '(while read -r _ <&3; do :; done; kill -TERM "$server" 2>/dev/null) &',
      'wait "$server"',
    ].join('\n');
    this.shell = spawn('sh', ['-c', script, 'guard', command, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    this.shell.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      this.serverPid ??= Number(output.split('\n')[0]) || undefined;
    });
    this.shell.stderr?.resume();
    this.exit = new Promise((resolve) => this.shell.once('exit', (code) => resolve(code)));
  }

  get running(): boolean {
    return this.shell.exitCode === null && this.shell.signalCode === null;
  }

  /** SIGTERM through the guard; SIGKILL if the server is still there after a while. */
  async stop(): Promise<void> {
    this.shell.stdin?.end();
    if (!this.running) return;
    const timer = setTimeout(() => {
      try {
        if (this.serverPid) process.kill(this.serverPid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, STOP_TIMEOUT_MS);
    try {
      await this.exit;
    } finally {
      clearTimeout(timer);
    }
  }
}

async function poll(
  what: string,
  server: GuardedServer,
  timeoutMs: number,
  check: () => Promise<void>,
  log: () => string,
) {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    if (!server.running) break;
    try {
      await check();
      return;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const reason = server.running ? `not ready within ${timeoutMs} ms` : 'exited';
  throw new Error(`${what} ${reason} (last error: ${String(last)}); its log:\n${log()}`);
}

function readLog(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-30).join('\n');
  } catch {
    return '(no log)';
  }
}

export interface TlsMariaDb {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** A user that logs in over TCP with a password (the server accepts TLS connections only). */
  readonly user: string;
  readonly password: string;
  readonly database: string;
  /** Runs statements as root over the server's Unix socket (no TCP, so no TLS needed). */
  admin<T>(sql: string): Promise<T>;
  /** Swaps the certificate the server presents to new connections (FLUSH SSL). */
  presentCertificate(pair: KeyPair): Promise<void>;
  stop(): Promise<void>;
}

/** The server reads its certificate from copies in its own directory, so a swap leaves the originals alone. */
function installCertificate(dir: string, pair: KeyPair): KeyPair {
  const installed = { certFile: join(dir, 'server-cert.pem'), keyFile: join(dir, 'server-key.pem') };
  copyFileSync(pair.certFile, installed.certFile);
  copyFileSync(pair.keyFile, installed.keyFile);
  return installed;
}

/**
 * A throw-away MariaDB in `dir` that accepts TCP connections on loopback only over TLS
 * (require_secure_transport), with its own datadir, socket and pid file.
 */
export async function startTlsMariaDb(dir: string, certs: Certificates): Promise<TlsMariaDb> {
  const datadir = join(dir, 'data');
  const socket = join(dir, 'mysqld.sock');
  const errorLog = join(dir, 'mysqld.err');
  const osUser = userInfo().username;
  mkdirSync(dir, { recursive: true });
  const installed = installCertificate(dir, certs.server);
  execFileSync(
    'mariadb-install-db',
    [
      '--no-defaults',
      `--datadir=${datadir}`,
      `--user=${osUser}`,
      // root@localhost without a password, reachable over the socket only: the test's admin.
      '--auth-root-authentication-method=normal',
      '--skip-test-db',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 },
  );
  const port = await freePort();
  const server = new GuardedServer(MARIADBD, [
    '--no-defaults',
    `--datadir=${datadir}`,
    `--user=${osUser}`,
    `--socket=${socket}`,
    `--pid-file=${join(dir, 'mysqld.pid')}`,
    `--log-error=${errorLog}`,
    `--tmpdir=${dir}`,
    '--skip-networking=0',
    '--bind-address=127.0.0.1',
    `--port=${port}`,
    '--skip-name-resolve',
    `--ssl-ca=${certs.caFile}`,
    `--ssl-cert=${installed.certFile}`,
    `--ssl-key=${installed.keyFile}`,
    '--require-secure-transport=ON',
    // Small and quiet: it holds one test database.
    '--innodb-buffer-pool-size=32M',
    '--performance-schema=OFF',
    '--skip-log-bin',
  ]);
  const admin = async <T>(sql: string): Promise<T> => {
    const conn = await createConnection({ socketPath: socket, user: 'root', password: '', multipleStatements: true });
    try {
      return (await conn.query(sql))[0] as T;
    } finally {
      await conn.end();
    }
  };
  try {
    await poll(
      'mariadbd',
      server,
      30_000,
      () => admin('SELECT 1'),
      () => readLog(errorLog),
    );
    const user = 'quota_tls';
    const password = randomBytes(12).toString('hex');
    const database = 'quota_tls_test';
    await admin(
      `CREATE DATABASE ${database} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
       CREATE USER '${user}'@'127.0.0.1' IDENTIFIED BY '${password}';
       GRANT ALL ON ${database}.* TO '${user}'@'127.0.0.1';`,
    );
    const presentCertificate = async (pair: KeyPair) => {
      installCertificate(dir, pair);
      await admin('FLUSH SSL');
    };
    return { host: '127.0.0.1', port, user, password, database, admin, presentCertificate, stop: () => server.stop() };
  } catch (err) {
    await server.stop();
    throw err;
  }
}

export interface TlsRedis {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** A client that trusts the test CA, for looking at what the service wrote. */
  client(): Redis;
  /** Swaps the certificate the server presents to new connections (CONFIG SET reloads it). */
  presentCertificate(pair: KeyPair): Promise<void>;
  stop(): Promise<void>;
}

/** A throw-away redis-server with a TLS port only (no plain port at all). */
export async function startTlsRedis(dir: string, certs: Certificates): Promise<TlsRedis> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const logFile = join(dir, 'redis.log');
  const installed = installCertificate(dir, certs.server);
  const options: Record<string, string> = {
    port: '0',
    'tls-port': String(port),
    bind: '127.0.0.1',
    'tls-cert-file': installed.certFile,
    'tls-key-file': installed.keyFile,
    'tls-ca-cert-file': certs.caFile,
    'tls-auth-clients': 'no',
    save: '',
    appendonly: 'no',
    dir,
    logfile: logFile,
  };
  const server = new GuardedServer(
    'redis-server',
    Object.entries(options).flatMap(([name, value]) => [`--${name}`, value]),
  );
  const ca = readFileSync(certs.caFile, 'utf8');
  const client = () =>
    new Redis({
      host: '127.0.0.1',
      port,
      tls: { ca },
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
  try {
    await poll(
      'redis-server',
      server,
      15_000,
      async () => {
        const probe = client();
        try {
          await probe.connect();
          await probe.ping();
        } finally {
          probe.disconnect();
        }
      },
      () => readLog(logFile),
    );
    const presentCertificate = async (pair: KeyPair) => {
      installCertificate(dir, pair);
      const admin = client();
      try {
        await admin.connect();
        await admin.config('SET', 'tls-cert-file', installed.certFile, 'tls-key-file', installed.keyFile);
      } finally {
        admin.disconnect();
      }
    };
    return { host: '127.0.0.1', port, client, presentCertificate, stop: () => server.stop() };
  } catch (err) {
    await server.stop();
    throw err;
  }
}
