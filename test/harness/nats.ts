// NATS for tests: the configured server with a subject prefix of the test's own, or a private nats-server
// on a spare port for tests that stop and start it.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { waitFor } from './wait.ts';

/** The server tests use: TEST_NATS_URL, or the local one. */
export const TEST_NATS_URL = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

/** A subject prefix unique to this test run and worker. */
export function testSubjectPrefix(label: string): string {
  return `t_${label.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_${process.env.JEST_WORKER_ID ?? '0'}_${randomBytes(4).toString('hex')}`;
}

/** Deletes the streams created under a test prefix. */
export async function deleteTestStreams(prefix: string, url = TEST_NATS_URL): Promise<void> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    const streamPrefix = `${prefix.replace(/[^A-Za-z0-9_-]/g, '_')}_`;
    for await (const stream of jsm.streams.list()) {
      if (stream.config.name.startsWith(streamPrefix)) await jsm.streams.delete(stream.config.name);
    }
  } finally {
    await nc.close();
  }
}

/** A free TCP port on the loopback interface. */
export async function sparePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** A nats-server of the test's own, which the test may stop and start again (same port, same storage). */
export interface PrivateNats {
  /** Its URL. */
  url: string;
  /** Starts it (again); resolves when it accepts connections. */
  start(): Promise<void>;
  /** Stops it. */
  stop(): Promise<void>;
  /** Stops it and deletes its storage. */
  destroy(): Promise<void>;
}

const NATS_SERVER = process.env.NATS_SERVER_BIN ?? '/usr/sbin/nats-server';

/** Whether a NATS server accepts a connection on `port` now. */
async function acceptsConnections(port: number): Promise<boolean> {
  try {
    const nc = await connect({ servers: `nats://127.0.0.1:${port}`, reconnect: false });
    await nc.close();
    return true;
  } catch {
    return false;
  }
}

/** Prepares (does not start) a private nats-server with JetStream. */
export async function privateNats(): Promise<PrivateNats> {
  const port = await sparePort();
  const dir = mkdtempSync(join(tmpdir(), 'nats-'));
  let child: ChildProcess | undefined;
  const stop = async () => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      running.once('exit', () => resolve());
      running.kill('SIGTERM');
    });
  };
  return {
    url: `nats://127.0.0.1:${port}`,
    async start() {
      child = spawn(NATS_SERVER, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], { stdio: 'ignore' });
      await waitFor(() => acceptsConnections(port), Boolean, 10_000);
    },
    stop,
    async destroy() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
