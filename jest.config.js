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

/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/src', '<rootDir>/test'],
  testMatch: ['**/*.spec.ts'],
  // Suites named *.mysql.spec.ts exercise what only a server database has (outages, two
  // instances on one database); the embedded run leaves them out.
  testPathIgnorePatterns: ['/node_modules/', '/dist/', ...(onMysql ? [] : ['\\.mysql\\.spec\\.ts$'])],
  transform: { '^.+\\.(t|j|mj)s$': swc },
  transformIgnorePatterns: [
    '/node_modules/(?!(@nestjs|file-type|@tokenizer|token-types|uint8array-extras|@borewit|load-esm|@fastify/static|content-disposition)/)',
  ],
  moduleFileExtensions: ['ts', 'js', 'mjs', 'json'],
  globalSetup: '<rootDir>/test/support/global-setup.js',
  testTimeout: 30_000,
};
