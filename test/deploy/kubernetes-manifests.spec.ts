import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadAll } from 'js-yaml';
import request from 'supertest';
import { loadConfig } from '../../src/config/app-config';
import { startTestApp, type TestApp } from '../support/test-app';

const DIR = join(__dirname, '../../deploy/kubernetes');

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec?: any;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

const manifests: { file: string; doc: Manifest }[] = readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
  .flatMap((file) =>
    (loadAll(readFileSync(join(DIR, file), 'utf8')) as Manifest[]).filter((doc) => doc).map((doc) => ({ file, doc })),
  );

const byKind = (kind: string) => manifests.filter((m) => m.doc.kind === kind).map((m) => m.doc);
const deployment = (name: string) => byKind('Deployment').find((d) => d.metadata.name === name)!;
const configMap = byKind('ConfigMap')[0];

function container(d: Manifest) {
  return d.spec.template.spec.containers[0];
}

const STRONG_SECRET = 'k8s-manifest-check-Zx8#kq2!Lm9@Vb4$Np7%Rt1^';

/**
 * Peak RSS per role under the benchmarks with the heap capped at 256 MB (docs/benchmarks.md, "Memory per role"):
 * the API under the consume bench and a 2-minute mixed load, the worker under a 1,000,000-member
 * bulk adjustment. Re-measure and update them with the manifests.
 */
const MEASURED_PEAK_RSS_MB = { api: 246, worker: 209 };
/** The image's --max-semi-space-size (Dockerfile CMD): the young generation is two of these. */
const IMAGE_SEMI_SPACE_MB = 32;
/** Code, buffers, sockets and the allocator's slack outside the V8 heap, measured well under this. */
const OUTSIDE_HEAP_MB = 128;

interface Resources {
  cpu: string;
  memory: string;
}

function mebibytes(quantity: string): number {
  const match = /^(\d+)(Mi|Gi)$/.exec(quantity);
  if (!match) throw new Error(`unexpected memory quantity ${quantity}`);
  return Number(match[1]) * (match[2] === 'Gi' ? 1024 : 1);
}

/** What a pod's process sees: ConfigMap, Secret (with a real secret in place of the example's), own env. */
function podEnv(d: Manifest): Record<string, string> {
  const secret = byKind('Secret')[0];
  return { ...secret.stringData, ...envOf(d), JWT_SECRET: STRONG_SECRET, ADMIN_EMAIL: '', ADMIN_PASSWORD: '' };
}

function envOf(d: Manifest): Record<string, string> {
  const own = Object.fromEntries(
    (container(d).env ?? []).map((e: { name: string; value: string }) => [e.name, e.value]),
  );
  return { ...configMap.data, ...own };
}

describe('Kubernetes manifests', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  it('parse, and hold every object a deployment needs', () => {
    for (const { file, doc } of manifests) {
      expect({ file, apiVersion: typeof doc.apiVersion, kind: typeof doc.kind }).toEqual({
        file,
        apiVersion: 'string',
        kind: 'string',
      });
    }
    const names = manifests.map((m) => `${m.doc.kind}/${m.doc.metadata.name}`).sort();
    expect(names).toEqual(
      expect.arrayContaining([
        'ConfigMap/quota-service-config',
        'Secret/quota-service-secrets',
        'Deployment/quota-service-api',
        'Deployment/quota-service-worker',
        'Service/quota-service-api',
        'Job/quota-service-migrate',
        'PodDisruptionBudget/quota-service-api',
        'HorizontalPodAutoscaler/quota-service-api',
      ]),
    );
  });

  it('the kustomization lists files that exist', () => {
    const kustomization = loadAll(readFileSync(join(DIR, 'kustomization.yaml'), 'utf8'))[0] as { resources: string[] };
    const files = readdirSync(DIR);
    for (const resource of kustomization.resources) expect(files).toContain(resource);
  });

  it('the ConfigMap and Secret hold a configuration the service accepts', () => {
    const config = loadConfig(podEnv(deployment('quota-service-api')));
    expect(config.isProduction).toBe(true);
    expect(config.database.kind).toBe('mysql');
    expect(config.redis?.topology).toMatchObject({ kind: 'single', host: configMap.data!.REDIS_HOST });
  });

  it.each(['quota-service-api', 'quota-service-worker'])(
    '%s runs the same image with its APP_ROLE and probes real routes on its port',
    async (name) => {
      const d = deployment(name);
      const c = container(d);
      expect(c.image).toBe('quota-service');
      expect(envOf(d).APP_ROLE).toBe(name.endsWith('api') ? 'api' : 'worker');
      expect(loadConfig(podEnv(d)).role).toBe(envOf(d).APP_ROLE);

      const port = c.ports.find((p: { name: string }) => p.name === 'http');
      expect(port.containerPort).toBe(Number(envOf(d).PORT));
      expect(d.spec.selector.matchLabels).toEqual(
        expect.objectContaining({
          'app.kubernetes.io/component': d.spec.template.metadata.labels['app.kubernetes.io/component'],
        }),
      );

      const probes = { startup: c.startupProbe, liveness: c.livenessProbe, readiness: c.readinessProbe };
      expect(probes.liveness.httpGet.path).toBe('/api/v1/health/live');
      expect(probes.startup.httpGet.path).toBe('/api/v1/health/live');
      expect(probes.readiness.httpGet.path).toBe('/api/v1/health/ready');
      for (const probe of Object.values(probes)) {
        expect(probe.httpGet.port).toBe('http');
        await request(t.server).get(probe.httpGet.path).expect(200);
      }

      expect(c.resources.requests).toEqual({ cpu: expect.any(String), memory: expect.any(String) });
      expect(c.resources.limits).toEqual({ cpu: expect.any(String), memory: expect.any(String) });
    },
  );

  it.each([
    ['quota-service-api', MEASURED_PEAK_RSS_MB.api],
    ['quota-service-worker', MEASURED_PEAK_RSS_MB.worker],
  ])('%s requests at least its measured peak and caps the V8 heap below its memory limit', (name, peak) => {
    const d = deployment(name);
    const { requests, limits } = container(d).resources as { requests: Resources; limits: Resources };
    const heapCap = /--max-old-space-size=(\d+)/.exec(envOf(d).NODE_OPTIONS ?? '');
    expect(heapCap).not.toBeNull();
    // The old space at its cap, the young generation (two semi-spaces of the image's size) and
    // what lives outside the heap (code, buffers, sockets) must fit under the limit.
    const worstCaseMb = Number(heapCap![1]) + 2 * IMAGE_SEMI_SPACE_MB + OUTSIDE_HEAP_MB;
    expect(mebibytes(limits.memory)).toBeGreaterThanOrEqual(worstCaseMb);
    expect(mebibytes(requests.memory)).toBeGreaterThanOrEqual(peak * 1.1);
    expect(mebibytes(limits.memory)).toBeGreaterThanOrEqual(peak * 1.5);
  });

  it('the image caps the heap by default and runs with the young generation the limits assume', () => {
    const dockerfile = readFileSync(join(__dirname, '../../Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/NODE_OPTIONS=--max-old-space-size=\d+/);
    expect(dockerfile).toContain(`--max-semi-space-size=${IMAGE_SEMI_SPACE_MB}`);
  });

  it('grace periods cover the preStop pause, the readiness drain and the shutdown timeout', () => {
    for (const name of ['quota-service-api', 'quota-service-worker']) {
      const d = deployment(name);
      const env = envOf(d);
      const preStopSeconds = Number(container(d).lifecycle.preStop.exec.command[1]);
      const needed =
        preStopSeconds + Number(env.SHUTDOWN_DRAIN_DELAY_MS) / 1000 + Number(env.SHUTDOWN_TIMEOUT_MS) / 1000;
      expect(d.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(needed);
    }
  });

  it('the migration Job runs the migrations with the same configuration', () => {
    const job = byKind('Job')[0];
    const c = job.spec.template.spec.containers[0];
    expect(c.image).toBe('quota-service');
    expect(c.command).toEqual(['npm', 'run', 'migration:run']);
    expect(c.envFrom).toEqual(container(deployment('quota-service-api')).envFrom);
    expect(job.spec.template.spec.restartPolicy).toBe('Never');
  });

  it('the PodDisruptionBudget, Service and HPA point at the API pods', () => {
    const apiLabels = deployment('quota-service-api').spec.template.metadata.labels;
    const pdb = byKind('PodDisruptionBudget')[0];
    const service = byKind('Service')[0];
    const hpa = byKind('HorizontalPodAutoscaler')[0];
    expect(pdb.spec.selector.matchLabels).toEqual(apiLabels);
    expect(service.spec.selector).toEqual(apiLabels);
    expect(service.spec.ports[0].targetPort).toBe('http');
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'quota-service-api' });
    expect(hpa.spec.minReplicas).toBeGreaterThan(pdb.spec.minAvailable);
  });
});
