import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { load } from 'js-yaml';
import request from 'supertest';
import { MetricsRegistry } from '../../src/metrics/metrics.module';
import { parsePrometheusText } from '../support/prometheus';
import { startTestApp, type TestApp } from '../support/test-app';

const ROOT = join(__dirname, '../..');
const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');

/** Registered only when Redis is configured (the rate limiter's Redis store): absent on the embedded database. */
const ONLY_WITH_REDIS = ['quota_rate_limit_store_errors_total'];

/** Labels Prometheus adds to every scraped series (the scrape target's). */
const TARGET_LABELS = ['job', 'instance'];

interface Target {
  expr: string;
  legendFormat?: string;
  datasource?: { type: string; uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type: string; uid: string };
  targets?: Target[];
}
interface Variable {
  name: string;
  type: string;
  query: string | { query: string };
  current?: { value?: string };
  datasource?: { type: string; uid: string };
}
interface Dashboard {
  __inputs: { name: string; type: string; pluginId: string }[];
  schemaVersion: number;
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Variable[] };
}

const dashboard = JSON.parse(read('deploy/grafana/quota-service.json')) as Dashboard;
const panels = dashboard.panels.filter((p) => p.type !== 'row');
const alertRules = (
  load(read('deploy/prometheus/quota-alerts.yml')) as { groups: { rules: { alert: string; expr: string }[] }[] }
).groups.flatMap((g) => g.rules);

interface Selector {
  readonly metric: string;
  /** label name → matcher text, e.g. `=~"5.."` */
  readonly matchers: Map<string, string>;
}

const AGGREGATIONS = new Set([
  'sum',
  'min',
  'max',
  'avg',
  'group',
  'stddev',
  'stdvar',
  'count',
  'count_values',
  'bottomk',
  'topk',
  'quantile',
  'limitk',
  'limit_ratio',
]);
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan', 'atan2']);
const TOKEN =
  /"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`|\{(?:"(?:[^"\\]|\\.)*"|[^}"])*\}|\[[^\]]*\]|\$\{?\w+\}?|[0-9][0-9A-Za-z.]*|[A-Za-z_:][A-Za-z0-9_:]*|\s+|./g;
const MATCHER = /([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')/g;

/**
 * The metric selectors and grouping labels of a PromQL expression. Enough of the grammar for the
 * expressions we write: names followed by `(` are functions, aggregations may take `by (...)` before
 * their argument, and whatever else names something is a metric.
 */
function parsePromQL(expr: string): { selectors: Selector[]; grouping: string[] } {
  const tokens = (expr.match(TOKEN) ?? []).filter((t) => !/^\s+$/.test(t));
  const selectors: Selector[] = [];
  const grouping: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    const next = tokens[i + 1];
    if (token.startsWith('{')) throw new Error(`a selector without a metric name: ${token} in ${expr}`);
    if (!/^[A-Za-z_:]/.test(token)) continue;
    if (GROUPING.has(token)) {
      if (next !== '(') continue;
      i += 2;
      for (; i < tokens.length && tokens[i] !== ')'; i++) if (/^[A-Za-z_]/.test(tokens[i])) grouping.push(tokens[i]);
      continue;
    }
    if (KEYWORDS.has(token) || AGGREGATIONS.has(token) || next === '(') continue;
    const matchers = new Map<string, string>();
    if (next?.startsWith('{')) {
      for (const [, label, op, value] of next.matchAll(MATCHER)) matchers.set(label, `${op}${value}`);
      i += 1;
    }
    selectors.push({ metric: token, matchers });
  }
  return { selectors, grouping };
}

function variableQuery(v: Variable): string {
  const query = typeof v.query === 'string' ? v.query : v.query.query;
  const labelValues = /^label_values\((.+),\s*([A-Za-z_][A-Za-z0-9_]*)\)$/.exec(query);
  if (!labelValues) throw new Error(`unexpected variable query for ${v.name}: ${query}`);
  return labelValues[1];
}

const dashboardExprs = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: p.title, expr: t.expr })));
const variableExprs = dashboard.templating.list
  .filter((v) => v.type === 'query')
  .map((v) => ({ where: `variable ${v.name}`, expr: variableQuery(v) }));
const alertExprs = alertRules.map((r) => ({ where: r.alert, expr: r.expr }));

/** The panels the runbook relies on, each with the metrics it must show. */
const REQUIRED_PANELS: Record<string, string[]> = {
  'Request rate by route': ['http_request_duration_seconds_count'],
  'Latency by route (p50 / p95 / p99)': ['http_request_duration_seconds_bucket'],
  'Errors by route': ['http_request_duration_seconds_count'],
  'Consumptions by membership type and result': ['quota_consumptions_total'],
  'Refusals by membership type and result': ['quota_consumptions_total'],
  'Ledger changes by reason': ['quota_ledger_changes_total'],
  'Open holds and units held': ['quota_holds_open', 'quota_units_held'],
  'Holds created and settled': ['quota_holds_created_total', 'quota_holds_settled_total'],
  'Anomalies by kind': ['quota_anomalies_total'],
  'Operations queue depth': ['quota_operations_queue_depth'],
  'Operation durations (p50 / p95)': ['quota_operation_duration_seconds_bucket'],
  'Operations finished by status (per hour)': ['quota_operation_duration_seconds_count'],
  'Webhook deliveries by result': ['quota_webhook_deliveries_total'],
  'Webhook deliveries pending': ['quota_webhook_deliveries_pending'],
  'DB pool: open and waiting vs limit': ['quota_db_pool_connections'],
  'DB pool saturation (open / limit)': ['quota_db_pool_connections'],
  'Analytics lag': ['quota_analytics_watermark_lag_seconds'],
  'Failed logins by reason': ['quota_failed_logins_total'],
  'Account lockouts': ['quota_account_lockouts_total'],
  'Rate-limited requests by limiter': ['quota_rate_limited_total'],
  'Redis errors': ['quota_stats_requests_total', 'quota_rate_limit_store_errors_total'],
  'Memory by instance': ['process_resident_memory_bytes', 'nodejs_heap_size_used_bytes'],
  'CPU by instance': ['process_cpu_seconds_total'],
  'Event loop lag by instance': ['nodejs_eventloop_lag_p99_seconds'],
  'Write freeze': ['quota_read_only'],
  'Write freeze (read-only) over time': ['quota_read_only'],
};

const CONSUME_ROUTES = ['/api/v1/quota/me/consume', '/api/v1/quota/members/1/consume'];

describe('Grafana dashboard (deploy/grafana/quota-service.json)', () => {
  let t: TestApp;
  /** Exported metric name (series names: histograms with _bucket/_sum/_count) → its label names. */
  const exported = new Map<string, string[]>();
  let consumeRouteLabels: string[] = [];

  beforeAll(async () => {
    t = await startTestApp();
    // Both consume routes answer (401 without a token) so their route labels are in the scrape.
    for (const path of CONSUME_ROUTES) await request(t.server).post(path).send({ amount: 1 }).expect(401);

    const res = await request(t.server).get('/metrics').expect(200);
    const { types, samples } = parsePrometheusText(res.text);
    const labelNames = new Map(
      (t.app.get(MetricsRegistry).getMetricsAsArray() as unknown as { name: string; labelNames?: string[] }[]).map(
        (m) => [m.name, [...(m.labelNames ?? [])]],
      ),
    );
    for (const [name, type] of types) {
      const labels = labelNames.get(name) ?? [];
      if (type === 'histogram') {
        exported.set(`${name}_bucket`, [...labels, 'le']);
        for (const suffix of ['_sum', '_count']) exported.set(`${name}${suffix}`, labels);
      } else {
        exported.set(name, labels);
      }
    }
    consumeRouteLabels = [
      ...new Set(
        samples
          .filter((s) => s.name === 'http_request_duration_seconds_count' && s.labels.route?.endsWith('/consume'))
          .map((s) => s.labels.route),
      ),
    ];
  });
  afterAll(async () => {
    await t.close();
  });

  /** What the queries may use: the scrape, plus what needs Redis. */
  function known(): Map<string, string[]> {
    const all = new Map(exported);
    if (t.database.driver !== 'mysql') for (const name of ONLY_WITH_REDIS) all.set(name, []);
    return all;
  }

  it('reads PromQL as the checks below need: metrics, their matchers, grouping labels', () => {
    const parsed = parsePromQL(
      'histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket{job=~"$job",route=~"a|b"}[$__rate_interval]))) ' +
        '/ on (job) group_left max(quota_not_a_metric offset 5m) > bool 0.25 or sum(rate(x_total{a="}"}[5m])) by (kind)',
    );
    expect(parsed.selectors.map((s) => s.metric)).toEqual([
      'http_request_duration_seconds_bucket',
      'quota_not_a_metric',
      'x_total',
    ]);
    expect([...parsed.selectors[0].matchers.keys()]).toEqual(['job', 'route']);
    expect(parsed.selectors[0].matchers.get('route')).toBe('=~"a|b"');
    expect(parsed.grouping).toEqual(['le', 'route', 'job', 'kind']);
    expect(() => parsePromQL('{__name__="up"}')).toThrow(/without a metric name/);
  });

  it('the scrape is what the list of this test says: Redis-only metrics only with Redis', () => {
    expect(exported.get('http_request_duration_seconds_bucket')).toEqual(
      expect.arrayContaining(['method', 'route', 'status_code', 'le']),
    );
    for (const name of ONLY_WITH_REDIS) {
      expect({ name, exported: exported.has(name) }).toEqual({ name, exported: t.database.driver === 'mysql' });
    }
  });

  it('imports anywhere: a Prometheus data source input, a data source variable, job and instance variables', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    expect(dashboard.uid).toBe('quota-service');
    expect(dashboard.__inputs).toEqual([
      expect.objectContaining({ name: 'DS_PROMETHEUS', type: 'datasource', pluginId: 'prometheus' }),
    ]);
    const variables = new Map(dashboard.templating.list.map((v) => [v.name, v]));
    expect(variables.get('datasource')).toMatchObject({
      type: 'datasource',
      query: 'prometheus',
      current: { value: '${DS_PROMETHEUS}' },
    });
    for (const name of ['job', 'instance']) {
      expect(variables.get(name)).toMatchObject({
        type: 'query',
        datasource: { type: 'prometheus', uid: '${datasource}' },
      });
    }
    // Nothing may name a data source of the machine the dashboard was exported from.
    for (const panel of panels) {
      expect({ panel: panel.title, uid: panel.datasource?.uid }).toEqual({ panel: panel.title, uid: '${datasource}' });
      for (const target of panel.targets ?? []) expect(target.datasource?.uid).toBe('${datasource}');
    }
  });

  it('lays out distinct panels that do not overlap', () => {
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const titles = panels.map((p) => p.title);
    expect(new Set(titles).size).toBe(titles.length);
    const taken = new Set<string>();
    for (const { title, gridPos } of dashboard.panels) {
      expect(gridPos.x + gridPos.w).toBeLessThanOrEqual(24);
      for (let x = gridPos.x; x < gridPos.x + gridPos.w; x++) {
        for (let y = gridPos.y; y < gridPos.y + gridPos.h; y++) {
          expect({ title, cell: `${x},${y}`, free: !taken.has(`${x},${y}`) }).toEqual({
            title,
            cell: `${x},${y}`,
            free: true,
          });
          taken.add(`${x},${y}`);
        }
      }
    }
  });

  it('has every panel the runbook relies on, each querying its metrics', () => {
    for (const [title, metrics] of Object.entries(REQUIRED_PANELS)) {
      const panel = panels.find((p) => p.title === title);
      const queried = (panel?.targets ?? []).flatMap((target) =>
        parsePromQL(target.expr).selectors.map((s) => s.metric),
      );
      expect({ title, queried: [...new Set(queried)] }).toEqual({ title, queried: expect.arrayContaining(metrics) });
    }
  });

  it('every panel query is filtered by the job and instance variables', () => {
    for (const { where, expr } of dashboardExprs) {
      for (const { metric, matchers } of parsePromQL(expr).selectors) {
        expect({ where, metric, job: matchers.get('job'), instance: matchers.get('instance') }).toEqual({
          where,
          metric,
          job: '=~"$job"',
          instance: '=~"$instance"',
        });
      }
    }
  });

  it('the dashboard, its variables and the alert rules query only metrics the service exports, by labels they carry', () => {
    const metrics = known();
    const everyLabel = new Set([...TARGET_LABELS, ...[...metrics.values()].flat()]);
    const problems: string[] = [];
    for (const { where, expr } of [...dashboardExprs, ...variableExprs, ...alertExprs]) {
      const { selectors, grouping } = parsePromQL(expr);
      expect(selectors.length).toBeGreaterThan(0);
      for (const { metric, matchers } of selectors) {
        const labels = metrics.get(metric);
        if (!labels) {
          problems.push(`${where}: ${metric} is not exported`);
          continue;
        }
        for (const label of matchers.keys()) {
          if (!labels.includes(label) && !TARGET_LABELS.includes(label))
            problems.push(`${where}: ${metric} has no label ${label}`);
        }
      }
      for (const label of grouping)
        if (!everyLabel.has(label)) problems.push(`${where}: no metric has a label ${label}`);
    }
    expect(problems).toEqual([]);
  });

  it('the consume latency alert and stat select exactly the consume routes the service labels requests with', () => {
    expect(consumeRouteLabels.sort()).toEqual(['/api/v1/quota/me/consume', '/api/v1/quota/members/:id/consume']);
    const latency = [
      alertRules.find((r) => r.alert === 'QuotaConsumeLatencyHigh')!.expr,
      panels.find((p) => p.title === 'Consume p99')!.targets![0].expr,
    ];
    for (const expr of latency) {
      const matcher = parsePromQL(expr).selectors[0].matchers.get('route');
      expect(matcher).toMatch(/^=~"/);
      // Prometheus anchors regular expressions at both ends.
      const route = new RegExp(`^(?:${matcher!.slice(3, -1)})$`);
      for (const label of consumeRouteLabels)
        expect({ label, matches: route.test(label) }).toEqual({ label, matches: true });
      for (const other of ['/api/v1/quota/me', '/api/v1/quota/members/:id/refund', '/api/v1/quota/members/:id/holds']) {
        expect({ other, matches: route.test(other) }).toEqual({ other, matches: false });
      }
    }
  });
});
