import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, waitFor } from './service-process';

/**
 * Throw-away Redis servers for one suite: a 3-master Redis Cluster or a Sentinel set (master,
 * replica, three sentinels), on free loopback ports, in a temporary directory, without
 * persistence. `stop()` kills every process and removes the directory; call it in afterAll (it is
 * also safe after a failed start, which stops what it had started before rethrowing).
 */

interface ServerProcess {
  readonly port: number;
  readonly child: ChildProcess;
  output(): string;
}

class ProcessGroup {
  readonly servers: ServerProcess[] = [];

  constructor(readonly dir: string) {}

  start(name: string, args: readonly string[], port: number): ServerProcess {
    let output = '';
    const child = spawn('redis-server', args, { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const server = { port, child, output: () => `${name} (port ${port}):\n${output}` };
    this.servers.push(server);
    return server;
  }

  /** Every server's log, for a failure message. */
  logs(): string {
    return this.servers.map((s) => s.output()).join('\n');
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.servers.map(async ({ child }) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = once(child, 'exit');
        child.kill('SIGKILL');
        await exited;
      }),
    );
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Distinct free ports (freePort alone may hand out the same one twice once it is released). */
async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

/** Runs redis-cli to completion; rejects with its output on a non-zero exit. */
export async function redisCli(args: readonly string[]): Promise<string> {
  const child = spawn('redis-cli', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`redis-cli ${args.join(' ')} exited with ${code}: ${output}`);
  return output;
}

async function answers(port: number, ...command: [string, ...string[]]): Promise<string> {
  return String(await call(port, ...command));
}

async function waitForPing(group: ProcessGroup, ports: readonly number[]): Promise<void> {
  await waitFor(
    async () => (await Promise.all(ports.map((p) => answers(p, 'PING')))).every((r) => r === 'PONG'),
    10_000,
    50,
  ).catch(() => {
    throw new Error(`redis servers did not start:\n${group.logs()}`);
  });
}

export interface RedisClusterServers {
  readonly ports: readonly number[];
  /** The service's environment for this Cluster (REDIS_HOST and REDIS_PORT blanked). */
  readonly env: Record<string, string>;
  stop(): Promise<void>;
}

export async function startRedisCluster(): Promise<RedisClusterServers> {
  const group = new ProcessGroup(mkdtempSync(join(tmpdir(), 'quota-redis-cluster-')));
  try {
    // Data ports and cluster bus ports, all chosen free (the default bus port, +10000, may not be).
    const [p1, p2, p3, b1, b2, b3] = await freePorts(6);
    const ports = [p1, p2, p3];
    const buses = [b1, b2, b3];
    ports.forEach((port, i) => {
      const dir = join(group.dir, String(port));
      mkdirSync(dir);
      group.start(
        `cluster node ${i + 1}`,
        [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--cluster-enabled',
          'yes',
          '--cluster-port',
          String(buses[i]),
          '--cluster-config-file',
          join(dir, 'nodes.conf'),
          '--cluster-node-timeout',
          '2000',
          '--save',
          '',
          '--appendonly',
          'no',
          '--dir',
          dir,
        ],
        port,
      );
    });
    await waitForPing(group, ports);
    await redisCli([
      '--cluster',
      'create',
      ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    await waitFor(
      async () => {
        const infos = await Promise.all(ports.map((p) => answers(p, 'CLUSTER', 'INFO')));
        return infos.every((info) => info.includes('cluster_state:ok') && info.includes('cluster_known_nodes:3'));
      },
      15_000,
      100,
    ).catch(() => {
      throw new Error(`the cluster did not reach cluster_state:ok:\n${group.logs()}`);
    });
    return {
      ports,
      env: {
        REDIS_HOST: '',
        REDIS_PORT: '',
        REDIS_CLUSTER_NODES: ports.map((p) => `127.0.0.1:${p}`).join(','),
      },
      stop: () => group.stop(),
    };
  } catch (err) {
    await group.stop();
    throw err;
  }
}

export interface RedisSentinelServers {
  readonly name: string;
  readonly sentinelPorts: readonly number[];
  /** The service's environment for this Sentinel set (REDIS_HOST and REDIS_PORT blanked). */
  readonly env: Record<string, string>;
  /** The port of the server the sentinels name as master now. */
  masterPort(): Promise<number>;
  /** SENTINEL FAILOVER, then waits until every sentinel names the former replica as master and it acts as one. */
  failover(): Promise<{ from: number; to: number }>;
  stop(): Promise<void>;
}

export async function startRedisSentinel(name = 'mymaster'): Promise<RedisSentinelServers> {
  const group = new ProcessGroup(mkdtempSync(join(tmpdir(), 'quota-redis-sentinel-')));
  try {
    const [master, replica, ...sentinelPorts] = await freePorts(5);
    const server = (port: number, extra: string[]) => {
      const dir = join(group.dir, String(port));
      mkdirSync(dir);
      return [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
        ...extra,
      ];
    };
    group.start('master', server(master, []), master);
    group.start('replica', server(replica, ['--replicaof', '127.0.0.1', String(master)]), replica);
    await waitForPing(group, [master, replica]);
    await waitFor(
      async () => (await answers(replica, 'INFO', 'replication')).includes('master_link_status:up'),
      10_000,
      50,
    );

    sentinelPorts.forEach((port, i) => {
      // A sentinel rewrites its configuration file, so each gets its own, writable.
      const conf = join(group.dir, `sentinel-${port}.conf`);
      writeFileSync(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${group.dir}`,
          `sentinel monitor ${name} 127.0.0.1 ${master} 2`,
          `sentinel down-after-milliseconds ${name} 1000`,
          `sentinel failover-timeout ${name} 5000`,
          `sentinel parallel-syncs ${name} 1`,
          '',
        ].join('\n'),
      );
      group.start(`sentinel ${i + 1}`, [conf, '--sentinel'], port);
    });
    await waitForPing(group, sentinelPorts);
    // Ready for a failover once every sentinel knows the replica and the two other sentinels.
    await waitFor(
      async () => {
        for (const port of sentinelPorts) {
          const state = await sentinelMasterState(port, name);
          if (state['num-slaves'] !== '1' || state['num-other-sentinels'] !== '2') return false;
        }
        return true;
      },
      20_000,
      100,
    ).catch(() => {
      throw new Error(`the sentinels did not discover each other and the replica:\n${group.logs()}`);
    });

    const masterPort = async () => {
      const addr = (await call(sentinelPorts[0], 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name)) as string[];
      return Number(addr[1]);
    };
    return {
      name,
      sentinelPorts,
      env: {
        REDIS_HOST: '',
        REDIS_PORT: '',
        REDIS_SENTINELS: sentinelPorts.map((p) => `127.0.0.1:${p}`).join(','),
        REDIS_SENTINEL_NAME: name,
      },
      masterPort,
      failover: async () => {
        const from = await masterPort();
        await redisCli(['-p', String(sentinelPorts[0]), 'SENTINEL', 'FAILOVER', name]);
        let to = from;
        await waitFor(
          async () => {
            const named = await Promise.all(
              sentinelPorts.map(async (p) => {
                const addr = (await call(p, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name)) as string[];
                return Number(addr[1]);
              }),
            );
            if (!named.every((p) => p !== from && p === named[0])) return false;
            to = named[0];
            return (await answers(to, 'INFO', 'replication')).includes('role:master');
          },
          20_000,
          100,
        );
        return { from, to };
      },
      stop: () => group.stop(),
    };
  } catch (err) {
    await group.stop();
    throw err;
  }
}

async function call(port: number, ...command: [string, ...string[]]): Promise<unknown> {
  const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true, retryStrategy: () => null });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await client.call(...command);
  } finally {
    client.disconnect();
  }
}

async function sentinelMasterState(port: number, name: string): Promise<Record<string, string>> {
  const flat = (await call(port, 'SENTINEL', 'MASTER', name)) as string[];
  const state: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) state[flat[i]] = flat[i + 1];
  return state;
}
