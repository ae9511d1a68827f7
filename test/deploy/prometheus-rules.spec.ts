import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { load } from 'js-yaml';

const ROOT = join(__dirname, '../..');
const DIR = join(ROOT, 'deploy/prometheus');
const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');

interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleFile {
  groups: { name: string; rules: AlertRule[] }[];
}
interface RuleTestFile {
  rule_files: string[];
  tests: {
    name: string;
    alert_rule_test?: {
      alertname: string;
      exp_alerts: { exp_labels?: Record<string, string>; exp_annotations?: Record<string, string> }[];
    }[];
  }[];
}

const rules = (load(read('deploy/prometheus/quota-alerts.yml')) as RuleFile).groups.flatMap((g) => g.rules);
const ruleTests = load(read('deploy/prometheus/quota-alerts.test.yml')) as RuleTestFile;

/** Runs promtool from deploy/prometheus, where the rule and test files name each other relatively. */
function promtool(...args: string[]): { status: number | null; output: string } {
  const result = spawnSync('promtool', args, { cwd: DIR, encoding: 'utf8', timeout: 60_000 });
  if (result.error && (result.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new Error(
      'promtool is not installed: install the Debian package `prometheus` ' +
        '(apt-get install --no-install-recommends prometheus); .ci/run does so when it is missing.',
    );
  }
  if (result.error) throw result.error;
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

/** The anchors GitHub gives the headings of a Markdown file. */
function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  for (const [, heading] of markdown.matchAll(/^#{1,6} +(.+?) *$/gm)) {
    anchors.add(
      heading
        .toLowerCase()
        .replace(/[^\p{L}\p{N}\s_-]/gu, '')
        .replace(/\s/g, '-'),
    );
  }
  return anchors;
}

/**
 * The alerts docs/operations.md recommends ("Alerts to set"), each as the rule that implements it.
 * Readiness is left to Kubernetes (kube-state-metrics), as the docs say.
 */
const RECOMMENDED_ALERTS = [
  'QuotaHighErrorRate',
  'QuotaConsumeLatencyHigh',
  'QuotaFailedLoginsHigh',
  'QuotaAccountLocked',
  'QuotaUnusualUsage',
  'QuotaAnalyticsLagging',
  'QuotaAnalyticsStalled',
  'QuotaRedisErrors',
  'QuotaOperationsQueueGrowing',
  'QuotaOperationsFailing',
  'QuotaWebhookDeliveriesFailing',
  'QuotaDbPoolSaturated',
  'QuotaWriteFreezeLeftOn',
];

describe('Prometheus alert rules (deploy/prometheus)', () => {
  it('promtool accepts the rule file and counts every rule', () => {
    const { status, output } = promtool('check', 'rules', 'quota-alerts.yml');
    expect(output).toContain(`SUCCESS: ${rules.length} rules found`);
    expect(status).toBe(0);
  });

  it('the rules pass their promtool unit tests', () => {
    const { status, output } = promtool('test', 'rules', 'quota-alerts.test.yml');
    expect(output).toContain('SUCCESS');
    expect(output).not.toContain('FAILED');
    expect(status).toBe(0);
  });

  it('promtool accepts the example scrape configuration, which loads the rules', () => {
    const { status, output } = promtool('check', 'config', 'prometheus.yml');
    expect(output).toContain('SUCCESS: 1 rule files found');
    expect(output).toContain('is valid prometheus config file syntax');
    expect(status).toBe(0);
  });

  it('has a rule for every alert the operations guide recommends, each named once', () => {
    const names = rules.map((r) => r.alert);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toEqual(expect.arrayContaining(RECOMMENDED_ALERTS));
  });

  it('labels every alert with a severity, and explains it with a summary, a description and a runbook anchor that exists', () => {
    const anchors = headingAnchors(read('docs/operations.md'));
    for (const rule of rules) {
      expect({ alert: rule.alert, severity: rule.labels?.severity }).toEqual({
        alert: rule.alert,
        severity: expect.stringMatching(/^(page|ticket|info)$/),
      });
      expect(rule.annotations?.summary).toBeTruthy();
      expect(rule.annotations?.description).toBeTruthy();
      const runbook = /^docs\/operations\.md#([a-z0-9-]+)$/.exec(rule.annotations?.runbook_url ?? '');
      expect({ alert: rule.alert, anchor: runbook?.[1] }).toEqual({ alert: rule.alert, anchor: expect.any(String) });
      expect({ alert: rule.alert, anchorExists: anchors.has(runbook![1]) }).toEqual({
        alert: rule.alert,
        anchorExists: true,
      });
    }
  });

  it('unit-tests every alert both ways: a case that fires it, with labels and annotations, and one that must not', () => {
    expect(ruleTests.rule_files).toEqual(['quota-alerts.yml']);
    const cases = ruleTests.tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const rule of rules) {
      const own = cases.filter((c) => c.alertname === rule.alert);
      const firing = own.filter((c) => c.exp_alerts.length > 0);
      expect({
        alert: rule.alert,
        fires: firing.length > 0,
        staysQuiet: own.some((c) => c.exp_alerts.length === 0),
      }).toEqual({ alert: rule.alert, fires: true, staysQuiet: true });
      for (const expected of firing.flatMap((c) => c.exp_alerts)) {
        expect(expected.exp_labels?.severity).toBe(rule.labels?.severity);
        expect(Object.keys(expected.exp_annotations ?? {}).sort()).toEqual(['description', 'runbook_url', 'summary']);
      }
    }
  });

  it('every alert is listed in the operations guide', () => {
    const operations = read('docs/operations.md');
    for (const rule of rules)
      expect({ alert: rule.alert, listed: operations.includes(rule.alert) }).toEqual({
        alert: rule.alert,
        listed: true,
      });
  });
});
