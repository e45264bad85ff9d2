// The three services of the platform, each as a process of its own, on a private PostgreSQL and a private
// nats-server that a test may crash, stop or freeze under them; the clients a test drives them with; and what
// PostgreSQL says of the connections each holds. Every URL a service is given carries a password (PostgreSQL
// trusts every local connection here, and the nats-server has no users, so both are accepted and ignored), so
// that any line or answer that prints a URL whole shows it.
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from '@billing/proto/health/v1/health_pb';
import {
  type PrivateNats,
  type PrivatePostgres,
  privateNats,
  privatePostgres,
  type ServiceName,
  type ServiceProcess,
  sparePort,
  startServiceProcess,
} from '@billing/test/harness';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import pg from 'pg';
import { readUntil } from './observe.ts';

/** The services a fault test runs, in the order they start. */
export const SERVICES: readonly ServiceName[] = ['catalog', 'usage', 'subscription'];

/** The protobuf service each serves, whose full name is a health service name too. */
export const SERVED: Record<ServiceName, string> = {
  catalog: 'billing.catalog.v1.CatalogService',
  subscription: 'billing.subscription.v1.CustomerService',
  usage: 'billing.usage.v1.UsageService',
};

/** The password in every database URL the services are given. */
export const DATABASE_PASSWORD = 'Pg-S3cr3tPassw0rd';
/** The password in every NATS URL the services are given. */
export const NATS_PASSWORD = 'Nats-S3cr3tPassw0rd';

/** The kit's PostgreSQL pool size per service (`DatabaseOptions.poolSize`, which no service sets). */
export const POOL_SIZE = 10;

/** A URL with user info added (`postgres://user:password@host/...`). */
export function withCredentials(url: string, user: string, password: string): string {
  const parsed = new URL(url);
  parsed.username = user;
  parsed.password = password;
  return parsed.toString();
}

/** What a health Check answers: a serving status by name, or the code of the failed call. */
export type HealthAnswer = keyof typeof ServingStatus | keyof typeof Code;

/** A grpc.health.v1 client of one process, as a Kubernetes gRPC probe calls it (with a short deadline). */
export function healthOf(baseUrl: string): (service: string) => Promise<HealthAnswer> {
  const client = createClient(Health, createGrpcTransport({ baseUrl }));
  return async (service) => {
    try {
      const { status } = await client.check({ service }, { timeoutMs: 2_000 });
      return ServingStatus[status] as HealthAnswer;
    } catch (err) {
      return Code[ConnectError.from(err).code] as HealthAnswer;
    }
  };
}

/** The readiness of a process: `readiness`, the whole server ('') and its served service, as one answer each. */
export async function readinessOf(check: (service: string) => Promise<HealthAnswer>, service: ServiceName) {
  return Promise.all(['readiness', '', SERVED[service]].map((name) => check(name)));
}

/** The platform under test: its dependencies, the service processes, and their databases. */
export interface FaultPlatform {
  /** The private PostgreSQL every service's database is on. */
  postgres: PrivatePostgres;
  /** The private nats-server. */
  nats: PrivateNats;
  /** The service processes. */
  processes: Record<ServiceName, ServiceProcess>;
  /** A health client per service. */
  health: Record<ServiceName, (service: string) => Promise<HealthAnswer>>;
  /** The database name of each service. */
  databases: Record<ServiceName, string>;
  /** The connections to each service's database that PostgreSQL lists (pg_stat_activity). */
  connectionsHeld(): Promise<Record<ServiceName, number>>;
  /** Runs `work` on an administrator's connection to a service's database. */
  asAdministrator<T>(service: ServiceName, work: (client: pg.Client) => Promise<T>): Promise<T>;
  /** Waits until every service answers SERVING on readiness. */
  ready(): Promise<void>;
  /** Kills what still runs and deletes the servers' folders. */
  destroy(): Promise<void>;
}

/**
 * Starts a private PostgreSQL and nats-server and the three services on them, each with `env` added to its
 * environment; resolves once every service is ready.
 */
export async function startFaultPlatform(env: Record<string, string>): Promise<FaultPlatform> {
  const [postgres, nats] = await Promise.all([privatePostgres(), privateNats()]);
  await Promise.all([postgres.start(), nats.start()]);
  const databases = { catalog: 'catalog', subscription: 'subscription', usage: 'usage' };
  for (const name of Object.values(databases)) await postgres.createDatabase(name);
  const catalogPort = await sparePort();
  const common = {
    ...env,
    NATS_URL: withCredentials(nats.url, 'billing', NATS_PASSWORD),
    CATALOG_URL: `http://127.0.0.1:${catalogPort}`,
  };
  const envOf = (service: ServiceName) => ({
    ...common,
    ...(service === 'catalog' ? { CATALOG_PORT: String(catalogPort) } : {}),
    [`${service.toUpperCase()}_DATABASE_URL`]: withCredentials(
      postgres.url(databases[service]),
      'postgres',
      DATABASE_PASSWORD,
    ),
  });
  const started = await Promise.allSettled(SERVICES.map((service) => startServiceProcess(service, envOf(service))));
  const running = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const destroy = async () => {
    await Promise.all(running.map((p) => p.kill()));
    await Promise.all([postgres.destroy(), nats.destroy()]);
  };
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) {
    await destroy();
    throw failed.reason;
  }
  const processes = Object.fromEntries(running.map((p) => [p.service, p])) as Record<ServiceName, ServiceProcess>;
  const health = Object.fromEntries(running.map((p) => [p.service, healthOf(p.baseUrl)])) as FaultPlatform['health'];
  const asAdministrator = async <T>(service: ServiceName, work: (client: pg.Client) => Promise<T>) => {
    const client = new pg.Client({ connectionString: postgres.url(databases[service]) });
    client.on('error', () => undefined);
    await client.connect();
    try {
      return await work(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  };
  const platform: FaultPlatform = {
    postgres,
    nats,
    processes,
    health,
    databases,
    asAdministrator,
    async connectionsHeld() {
      const client = new pg.Client({ connectionString: postgres.url() });
      client.on('error', () => undefined);
      await client.connect();
      try {
        const { rows } = await client.query<{ datname: string; held: number }>(
          `select datname, count(*)::int as held from pg_stat_activity
            where datname = any($1::text[]) group by datname`,
          [Object.values(databases)],
        );
        const held = new Map(rows.map((r) => [r.datname, r.held]));
        return Object.fromEntries(SERVICES.map((s) => [s, held.get(databases[s]) ?? 0])) as Record<ServiceName, number>;
      } finally {
        await client.end().catch(() => undefined);
      }
    },
    async ready() {
      const answers = await readUntil(
        () => Promise.all(SERVICES.map((s) => readinessOf(health[s], s))),
        (all) => all.flat().every((a) => a === 'SERVING'),
        30_000,
      );
      if (!answers.flat().every((a) => a === 'SERVING')) {
        throw new Error(`not every service turned ready: ${JSON.stringify(answers)}`);
      }
    },
    destroy,
  };
  try {
    await platform.ready();
  } catch (err) {
    await destroy();
    throw err;
  }
  return platform;
}
