// Process-level suites (start-up, SIGTERM) run the built service exactly as production does.
// SKIP_BUILD=1 skips the build for a focused run when dist/ is already fresh.
const { execFileSync } = require('node:child_process');
const path = require('node:path');

module.exports = async () => {
  if (process.env.SKIP_BUILD === '1') return;
  const root = path.resolve(__dirname, '../..');
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
    cwd: root,
    stdio: 'inherit',
  });
};
