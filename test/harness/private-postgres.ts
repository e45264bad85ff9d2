// A PostgreSQL server of the test's own, in a temporary folder on a spare port, for tests that crash, stop or
// freeze the database under a running service. It runs the machine's PostgreSQL binaries (initdb, postgres),
// as the `postgres` user when the tests run as root, which PostgreSQL refuses to run as.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { sparePort } from './nats.ts';
import { waitFor } from './wait.ts';

/** A private PostgreSQL server that a test may crash, stop, freeze and start again (same port, same data). */
export interface PrivatePostgres {
  /** Its port on 127.0.0.1. */
  readonly port: number;
  /** The URL of one of its databases (trust auth, user postgres). */
  url(database?: string): string;
  /** Creates a database on it. */
  createDatabase(name: string): Promise<string>;
  /** Starts it (again); resolves when it accepts connections. */
  start(): Promise<void>;
  /** A crash, as `pg_ctl stop -m immediate`: every backend is killed at once, without a checkpoint. */
  crash(): Promise<void>;
  /** A fast shutdown, as `pg_ctl stop -m fast`: sessions are ended, then the server exits. */
  stop(): Promise<void>;
  /** Freezes every process of the server (SIGSTOP): connections stay open and nothing answers, not even a new one. */
  freeze(): void;
  /** Lets a frozen server run again (SIGCONT). */
  thaw(): void;
  /** Stops it (thawing it first) and deletes its folder. */
  destroy(): Promise<void>;
}

function binDir(): string {
  if (process.env.POSTGRES_BIN_DIR) return process.env.POSTGRES_BIN_DIR;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  if (versions.length === 0) throw new Error('no PostgreSQL binaries found; set POSTGRES_BIN_DIR');
  return join(root, versions[0] as string, 'bin');
}

/** The uid and gid to run PostgreSQL as: the `postgres` user when this process is root, else this user. */
function runAs(): { uid?: number; gid?: number } {
  if (userInfo().uid !== 0) return {};
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

async function acceptsConnections(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Creates (initdb) and does not yet start a private PostgreSQL server. */
export async function privatePostgres(): Promise<PrivatePostgres> {
  const bin = binDir();
  const user = runAs();
  const folder = mkdtempSync(join(tmpdir(), 'pg-'));
  if (user.uid !== undefined) chownSync(folder, user.uid, user.gid as number);
  const data = join(folder, 'data');
  execFileSync(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8'], {
    ...user,
    stdio: 'ignore',
  });
  const port = await sparePort();
  const url = (database = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${database}`;
  let server: ChildProcess | undefined;
  let frozen = false;
  const exited = (child: ChildProcess) =>
    child.exitCode !== null || child.signalCode !== null
      ? Promise.resolve()
      : new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // Every process of the server: the postmaster and its children (backends, checkpointer, walwriter...). Each
  // child leads a process group of its own (PostgreSQL calls setsid in every child), so a signal to the
  // postmaster's group would not reach the open connections' backends: each is signalled by its pid.
  let stopped: number[] = [];
  const children = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      return [];
    }
  };
  const signalAll = (pids: readonly number[], signal: NodeJS.Signals) => {
    for (const pid of pids) {
      try {
        process.kill(pid, signal);
      } catch {
        // Exited meanwhile.
      }
    }
  };
  const thaw = () => {
    // The postmaster last, so that it forks nothing while its children are still stopped.
    signalAll([...stopped].reverse(), 'SIGCONT');
    stopped = [];
    frozen = false;
  };
  const end = async (signal: NodeJS.Signals) => {
    const running = server;
    if (!running) return;
    if (frozen) thaw();
    server = undefined;
    if (running.exitCode === null && running.signalCode === null) running.kill(signal);
    await exited(running);
  };
  return {
    port,
    url,
    async createDatabase(name) {
      const client = new pg.Client({ connectionString: url() });
      await client.connect();
      try {
        await client.query(`create database "${name.replace(/"/g, '')}"`);
      } finally {
        await client.end();
      }
      return url(name);
    },
    async start() {
      server = spawn(
        join(bin, 'postgres'),
        [
          '-D',
          data,
          '-p',
          String(port),
          '-k',
          folder,
          '-c',
          'listen_addresses=127.0.0.1',
          '-c',
          'fsync=off',
          '-c',
          'max_connections=200',
        ],
        { ...user, stdio: 'ignore' },
      );
      await waitFor(() => acceptsConnections(url()), Boolean, 20_000);
    },
    // SIGQUIT is PostgreSQL's immediate shutdown; SIGINT its fast shutdown.
    crash: () => end('SIGQUIT'),
    stop: () => end('SIGINT'),
    freeze() {
      const postmaster = server?.pid;
      if (postmaster === undefined) return;
      // The postmaster first, so that it forks no new backend meanwhile.
      signalAll([postmaster], 'SIGSTOP');
      stopped = [postmaster, ...children(postmaster)];
      signalAll(stopped.slice(1), 'SIGSTOP');
      frozen = true;
    },
    thaw,
    async destroy() {
      await end('SIGINT');
      rmSync(folder, { recursive: true, force: true });
    },
  };
}
