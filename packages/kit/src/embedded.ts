// The embedded PostgreSQL of the all-in-one mode: PGlite (PostgreSQL compiled to WASM) in the process. A cluster
// holds 70 to 130 MB resident however little data it has (docs/development.md, "At rest"), so the services of one
// process that keep their data in the same folder share one cluster, each in a schema named after it: its
// migrations, its tables and the kit's (outbox, idempotency keys, consumer records) stay its own, as in a database
// of its own.
//
// PGlite is one session. Its transactions are exclusive and a statement outside them waits for the open one, so
// every statement of a service runs in a transaction of its own that first puts the service's schema on the
// search path (`set local`, which ends with the transaction): no statement of one service ever runs on another's
// path. The services of one cluster take turns; none may wait, inside a transaction, for another to answer.

import { resolve } from 'node:path';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import { createPostgreSqlTypeParsers } from '@mikro-orm/sql';
import type { PGlite as KyselyPglite } from 'kysely';
import { parse as parseArray } from 'postgres-array';

// PostgreSQL's default of 128 MB of shared buffers is written to (zeroed) when the cluster starts, so it is all
// resident. The data of the all-in-one mode is small: 16 MB (2,048 pages) keeps it cached, for any number of
// services, and a cluster holds 130 MB instead of 270.
const SHARED_BUFFERS = '16MB';

interface Cluster {
  /** The instance, once started (after the previous one on the same folder has closed). */
  instance: Promise<PGlite>;
  /** The services open on it. */
  services: Set<string>;
}

// The open clusters of this process, by folder (`memory://` is one cluster too), and the ones closing: a folder is
// opened again only once its previous instance has closed, so two never write it at the same time.
const clusters = new Map<string, Cluster>();
const closing = new Map<string, Promise<void>>();

/** The schema of a service in a shared cluster, quoted as an identifier. */
function schemaIdentifier(service: string): string {
  return `"${service.replaceAll('"', '""')}"`;
}

function startCluster(dataDir: string): Promise<PGlite> {
  return PGlite.create({
    dataDir,
    // The type parsers MikroORM gives the instances it creates itself (dates and intervals kept as text).
    parsers: createPostgreSqlTypeParsers((value: string) => parseArray(value)),
    startParams: [...PGlite.defaultStartParams, '-c', `shared_buffers=${SHARED_BUFFERS}`],
  });
}

/** One service's place in an embedded cluster: the instance its ORM talks to, and how to leave. */
export interface EmbeddedSchema {
  /** The cluster as the service's ORM sees it: every statement runs on the service's schema. */
  readonly pglite: KyselyPglite;
  /** Leaves the cluster; the last service to leave closes it. */
  release(): Promise<void>;
}

/** The cluster of `key`, started (once the previous one on the folder has closed) if none is open. */
function clusterOf(key: string, dataDir: string): Cluster {
  const open = clusters.get(key);
  if (open) return open;
  const started: Cluster = {
    instance: (closing.get(key) ?? Promise.resolve()).then(() => startCluster(dataDir)),
    services: new Set(),
  };
  clusters.set(key, started);
  // A cluster that failed to start is forgotten: the next service to open the folder tries again.
  started.instance.catch(() => {
    if (clusters.get(key) === started) clusters.delete(key);
  });
  return started;
}

/** Takes `service` off `cluster`; the last to leave closes it, and the folder can be opened again once it has. */
async function leave(key: string, cluster: Cluster, service: string): Promise<void> {
  if (!cluster.services.delete(service) || cluster.services.size > 0) return;
  if (clusters.get(key) === cluster) clusters.delete(key);
  const closed = cluster.instance.then((instance) => instance.close());
  const settled = closed.catch(() => undefined);
  closing.set(key, settled);
  void settled.then(() => {
    if (closing.get(key) === settled) closing.delete(key);
  });
  await closed;
}

/**
 * Opens `service`'s schema in the cluster kept in `dataDir` (started on first use, shared by the services of
 * this process that keep their data there), creating the schema if it is new. A service opens a cluster once.
 */
export async function openEmbeddedSchema(service: string, dataDir: string): Promise<EmbeddedSchema> {
  const key = dataDir.startsWith('memory://') ? dataDir : resolve(dataDir);
  const cluster = clusterOf(key, dataDir);
  if (cluster.services.has(service)) {
    throw new Error(`the ${service} service is already open on the embedded database in ${dataDir}`);
  }
  cluster.services.add(service);
  const release = () => leave(key, cluster, service);
  let instance: PGlite;
  try {
    instance = await cluster.instance;
    await instance.exec(`create schema if not exists ${schemaIdentifier(service)}`);
  } catch (err) {
    await release().catch(() => undefined);
    throw err;
  }
  const onSearchPath = `set local search_path to ${schemaIdentifier(service)}`;
  const inSchema = <T>(work: (tx: Transaction) => Promise<T>): Promise<T> =>
    instance.transaction(async (tx) => {
      await tx.exec(onSearchPath);
      return work(tx);
    });
  const pglite: KyselyPglite = {
    query: (sql, params, options) => inSchema((tx) => tx.query(sql, params, options)),
    transaction: (work) => inSchema(work),
    // The ORM closes its connection; the cluster stays open for the other services until the last releases it.
    close: async () => undefined,
    get closed() {
      return instance.closed;
    },
    get ready() {
      return instance.ready;
    },
    waitReady: instance.waitReady,
  };
  return { pglite, release };
}
