'use strict';
// The thinnest consume endpoint: node:http + mysql2, no framework, no auth, no validation library.
// It runs the same transaction as the service's consume (idempotency key claim, conditional update,
// history insert, commit) so that `npm run bench` can say what the framework costs.
// GET /stats answers BASELINE_STATS_BODY from memory: the thinnest possible cached stats answer.
const http = require('node:http');
const { createHash } = require('node:crypto');
const mysql = require('mysql2');

const port = Number(process.env.PORT);
const pool = mysql
  .createPool({
    host: process.env.DB_HOST,
    port: Number(process.env.DB_PORT),
    user: process.env.DB_USERNAME,
    password: process.env.DB_PASSWORD,
    database: process.env.DB_DATABASE,
    connectionLimit: Number(process.env.DB_POOL_SIZE || 10),
    supportBigNumbers: true,
    bigNumberStrings: true,
    timezone: 'Z',
  })
  .promise();

const TTL_MS = 24 * 3600 * 1000;
const stamp = (d) => d.toISOString().replace('T', ' ').replace('Z', '');
const sha = (s) => createHash('sha256').update(s).digest('hex');

async function consume(memberId, amount, key) {
  const conn = await pool.getConnection();
  try {
    await conn.query('START TRANSACTION');
    const now = new Date();
    await conn.query(
      'INSERT INTO idempotency_keys (key_hash, scope, request_hash, member_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)',
      [
        sha(`baseline\n${key}`),
        'baseline',
        sha(`consume\n${memberId}\n${amount}`),
        memberId,
        stamp(now),
        stamp(new Date(now.getTime() + TTL_MS)),
      ],
    );
    const [update] = await conn.query(
      'UPDATE members SET quota_balance = LAST_INSERT_ID(quota_balance - ?) WHERE id = ? AND quota_balance >= ?',
      [amount, memberId, amount],
    );
    if (update.affectedRows === 0) {
      await conn.query('ROLLBACK');
      return null;
    }
    const balance = Number(update.insertId);
    await conn.query(
      "INSERT INTO member_quota_history (member_id, delta, balance_after, reason, actor, idempotency_key) VALUES (?, ?, ?, 'consumption', 'baseline', ?)",
      [memberId, -amount, balance, key],
    );
    await conn.query('COMMIT');
    return balance;
  } catch (err) {
    await conn.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    conn.release();
  }
}

const statsBody = process.env.BASELINE_STATS_BODY;

const server = http.createServer((req, res) => {
  if (statsBody !== undefined && req.method === 'GET' && req.url === '/stats') {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'x-cache': 'HIT' }).end(statsBody);
    return;
  }
  const match = /^\/consume\/(\d+)$/.exec(req.url || '');
  if (req.method !== 'POST' || !match) {
    res.writeHead(404).end();
    return;
  }
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk) => (body += chunk));
  req.on('end', () => {
    let amount;
    try {
      amount = JSON.parse(body).amount;
    } catch {
      amount = undefined;
    }
    const key = req.headers['idempotency-key'];
    if (!Number.isInteger(amount) || amount < 1 || typeof key !== 'string') {
      res.writeHead(422, { 'content-type': 'application/json' }).end('{"code":"validation_failed"}');
      return;
    }
    consume(match[1], amount, key).then(
      (balance) => {
        if (balance === null) {
          res.writeHead(409, { 'content-type': 'application/json' }).end('{"code":"insufficient_quota"}');
        } else {
          res
            .writeHead(200, { 'content-type': 'application/json' })
            .end(JSON.stringify({ data: { member_id: match[1], amount, balance } }));
        }
      },
      (err) => {
        res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: String(err.code) }));
      },
    );
  });
});
server.keepAliveTimeout = 65_000;
server.listen(port, '127.0.0.1', () => process.stdout.write(`baseline listening on ${port}\n`));
process.on('SIGTERM', () => server.close(() => pool.end().then(() => process.exit(0))));
