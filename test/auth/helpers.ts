import type { Response } from 'supertest';
import { DataSource } from 'typeorm';
import { AuditLogEntry } from '../../src/audit/audit-log.entity';
import { User } from '../../src/auth/user.entity';
import { MetricsRegistry } from '../../src/metrics/metrics.module';
import type { TestApp } from '../support/test-app';

export function dataSourceOf(testApp: TestApp): DataSource {
  return testApp.app.get(DataSource);
}

/** A user row as stored, hash included. */
export function storedUser(testApp: TestApp, id: string): Promise<User> {
  return dataSourceOf(testApp)
    .getRepository(User)
    .createQueryBuilder('user')
    .addSelect('user.passwordHash')
    .where('user.id = :id', { id })
    .getOneOrFail();
}

export function auditRowsFor(testApp: TestApp, userId: string): Promise<AuditLogEntry[]> {
  return dataSourceOf(testApp)
    .getRepository(AuditLogEntry)
    .find({ where: { entityType: 'user', entityId: userId }, order: { id: 'ASC' } });
}

/** Row counts of every table the service maps, to prove a refused request changed nothing. */
export async function tableCounts(testApp: TestApp): Promise<Record<string, number>> {
  const dataSource = dataSourceOf(testApp);
  const counts: Record<string, number> = {};
  for (const entity of dataSource.entityMetadatas) {
    counts[entity.tableName] = await dataSource.getRepository(entity.target).count();
  }
  return counts;
}

/** Every user row with the columns a change could touch, to prove a refused request changed nothing. */
export async function userStates(testApp: TestApp): Promise<unknown[]> {
  const users = await dataSourceOf(testApp)
    .getRepository(User)
    .createQueryBuilder('user')
    .addSelect('user.passwordHash')
    .orderBy('user.id')
    .getMany();
  return users.map((u) => ({ ...u, id: String(u.id), memberId: u.memberId === null ? null : String(u.memberId) }));
}

export function expectProblem(res: Response, status: number, code: string): void {
  expect({ status: res.status, code: (res.body as { code?: unknown }).code }).toEqual({ status, code });
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.body).toEqual(
    expect.objectContaining({
      type: `urn:quota-service:problem:${code}`,
      status,
      code,
      detail: expect.any(String),
      title: expect.any(String),
      request_id: res.headers['x-request-id'],
    }),
  );
}

/** The problem body without what legitimately differs between two responses. */
export function problemShape(res: Response): Record<string, unknown> {
  const { request_id: _requestId, ...rest } = res.body as Record<string, unknown>;
  return rest;
}

export async function metricValue(testApp: TestApp, name: string, labels: Record<string, string> = {}) {
  const metric = testApp.app.get(MetricsRegistry).getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, l]) => (v.labels as Record<string, unknown>)[k] === l))
    .reduce((sum, v) => sum + v.value, 0);
}

export const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
