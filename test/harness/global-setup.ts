// Jest global setup: make sure the tests have a PostgreSQL and a NATS JetStream to talk to. The configured
// (or local) servers are used when they answer. When they do not, and nothing was configured explicitly,
// and a Docker engine runs, testcontainers starts both and points the tests at them. These machines have no
// Docker engine: there, scripts/ensure-services.sh (run by .ci/run) starts the local servers instead.
import { execFileSync } from 'node:child_process';
import { connect } from 'node:net';

const DEFAULT_POSTGRES = 'postgres://postgres@127.0.0.1:5432/postgres';
const DEFAULT_NATS = 'nats://127.0.0.1:4222';

function answers(url: string, defaultPort: number): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port || defaultPort) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2_000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function dockerRuns(): boolean {
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 5_000 });
    return true;
  } catch {
    return false;
  }
}

/** The containers started here, kept on globalThis where global-teardown.ts finds them. */
export function startedContainers(): { stop(): Promise<unknown> }[] {
  const holder = globalThis as { billingTestContainers?: { stop(): Promise<unknown> }[] };
  holder.billingTestContainers ??= [];
  return holder.billingTestContainers;
}

export default async function globalSetup(): Promise<void> {
  const postgres = process.env.TEST_DATABASE_URL ?? DEFAULT_POSTGRES;
  const nats = process.env.TEST_NATS_URL ?? DEFAULT_NATS;
  const [pgUp, natsUp] = await Promise.all([answers(postgres, 5432), answers(nats, 4222)]);
  if (pgUp && natsUp) return;
  const configured = process.env.TEST_DATABASE_URL !== undefined || process.env.TEST_NATS_URL !== undefined;
  if (configured || !dockerRuns()) {
    const missing = [pgUp ? '' : `PostgreSQL at ${postgres}`, natsUp ? '' : `NATS at ${nats}`].filter(Boolean);
    throw new Error(
      `tests need ${missing.join(' and ')}: start them (bash scripts/ensure-services.sh) or set TEST_DATABASE_URL / TEST_NATS_URL`,
    );
  }
  const { GenericContainer, Wait } = await import('testcontainers');
  if (!pgUp) {
    const container = await new GenericContainer('postgres:16-alpine')
      .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: 'trust' })
      .withExposedPorts(5432)
      .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
      .start();
    startedContainers().push(container);
    process.env.TEST_DATABASE_URL = `postgres://postgres@${container.getHost()}:${container.getMappedPort(5432)}/postgres`;
  }
  if (!natsUp) {
    const container = await new GenericContainer('nats:2.10-alpine')
      .withCommand(['-js'])
      .withExposedPorts(4222)
      .start();
    startedContainers().push(container);
    process.env.TEST_NATS_URL = `nats://${container.getHost()}:${container.getMappedPort(4222)}`;
  }
}
