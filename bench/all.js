'use strict';
/**
 * npm run bench: every benchmark in turn, each a standalone script with its own database.
 * BENCH_ONLY=consume|bulk|stats|auth|holds|at runs one of them.
 */
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const suites = {
  consume: 'run.js',
  bulk: 'bulk.js',
  stats: 'stats.js',
  auth: 'auth.js',
  holds: 'holds.js',
  at: 'balance-at.js',
};
const only = process.env.BENCH_ONLY;
if (only && !suites[only]) {
  process.stderr.write(`BENCH_ONLY must be one of ${Object.keys(suites).join(', ')}\n`);
  process.exit(2);
}
let failed = false;
for (const [name, script] of Object.entries(suites)) {
  if (only && only !== name) continue;
  process.stdout.write(`\n=== ${name} benchmark ===\n`);
  const result = spawnSync(process.execPath, [path.join(__dirname, script)], { stdio: 'inherit' });
  if (result.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
