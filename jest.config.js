// Nest 12 packages are ESM-only; swc transforms them so Jest can stay in CommonJS mode.
const swc = [
  '@swc/jest',
  {
    jsc: {
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
      target: 'es2022',
    },
    module: { type: 'commonjs' },
  },
];

const onMysql = ['mysql', 'mariadb'].includes(process.env.DB_CONNECTION ?? '');

// Suites with `.mysql.` in their name exercise what only a server database has (outages, two
// instances on one database, TLS servers); the embedded run leaves them out.
const ignored = ['/node_modules/', '/dist/', ...(onMysql ? [] : ['/[^/]*\\.mysql\\.[^/]*spec\\.ts$'])];

const common = {
  testEnvironment: 'node',
  transform: { '^.+\\.(t|j|mj)s$': swc },
  transformIgnorePatterns: [
    '/node_modules/(?!(@nestjs|file-type|@tokenizer|token-types|uint8array-extras|@borewit|load-esm|@fastify/static|content-disposition)/)',
  ],
  moduleFileExtensions: ['ts', 'js', 'mjs', 'json'],
};

/**
 * Three tiers, each runnable alone (`npm run test:unit|test:integration|test:process`):
 * - unit: specs beside the code in src/, no database, no network;
 * - integration: the application booted in-process against a real database (the embedded file,
 *   or MariaDB + Redis with DB_CONNECTION=mysql), driven over HTTP;
 * - process: suites named `*.process.spec.ts` that spawn the built service or CLI as production
 *   runs them (start-up, SIGTERM, SIGKILL, CLI); their global setup builds dist/ first.
 * @type {import('jest').Config}
 */
module.exports = {
  testTimeout: 30_000,
  projects: [
    {
      ...common,
      displayName: 'unit',
      roots: ['<rootDir>/src'],
      testMatch: ['**/*.spec.ts'],
      testPathIgnorePatterns: ignored,
    },
    {
      ...common,
      displayName: 'integration',
      roots: ['<rootDir>/test'],
      testMatch: ['**/*.spec.ts'],
      testPathIgnorePatterns: [...ignored, '\\.process\\.spec\\.ts$'],
    },
    {
      ...common,
      displayName: 'process',
      roots: ['<rootDir>/test'],
      testMatch: ['**/*.process.spec.ts'],
      testPathIgnorePatterns: ignored,
      globalSetup: '<rootDir>/test/support/global-setup.js',
    },
  ],
};
