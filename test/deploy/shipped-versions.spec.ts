import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { load } from 'js-yaml';
import { createConnection } from 'mysql2/promise';
import { mysqlServer, testDriver } from '../support/test-database';

const ROOT = join(__dirname, '../..');
const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');

interface Compose {
  services: Record<string, { image?: string; environment?: Record<string, string>; depends_on?: object }>;
}

/** What users are given to run is what the tests run: the same database engine, the same Node.js. */
describe('shipped versions are the tested ones', () => {
  const compose = load(read('docker-compose.yml')) as Compose;

  it('docker compose runs MariaDB 10.11, and every service of the image uses it', () => {
    expect(compose.services.mariadb.image).toBe('mariadb:10.11');
    for (const name of ['migrate', 'api', 'worker']) {
      // The YAML merge key (`<<: *service-env`) as Compose applies it.
      const { '<<': shared, ...own } = (compose.services[name].environment ?? {}) as Record<string, unknown>;
      expect({ ...(shared as object), ...own }).toMatchObject({ DB_CONNECTION: 'mysql', DB_HOST: 'mariadb' });
      expect(compose.services[name].depends_on).toHaveProperty('mariadb');
    }
  });

  if (testDriver === 'mysql') {
    it('the database this run tests against is the one docker compose ships', async () => {
      const connection = await createConnection({ ...mysqlServer });
      try {
        const [rows] = await connection.query<import('mysql2').RowDataPacket[]>('SELECT VERSION() AS version');
        const version = String(rows[0].version);
        expect(version).toMatch(/mariadb/i);
        expect(version.startsWith('10.11.')).toBe(true);
      } finally {
        await connection.end();
      }
    });
  }

  it('the Docker image runs the Node.js major that CI tests on (24 LTS)', () => {
    const images = [...read('Dockerfile').matchAll(/^FROM node:(\d+)-/gm)].map((m) => Number(m[1]));
    const ciVersion = /^NODE24_VERSION=(\d+)\./m.exec(read('.ci/run'));
    expect(images.length).toBeGreaterThan(0);
    expect(ciVersion).not.toBeNull();
    expect(new Set(images)).toEqual(new Set([Number(ciVersion![1])]));
    expect(Number(ciVersion![1])).toBe(24);
  });
});
