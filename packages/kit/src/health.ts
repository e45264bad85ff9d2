// The standard gRPC health service (grpc.health.v1), which Kubernetes probes and load balancers call, under the
// kit's convention of named checks:
// - `liveness` is SERVING from the server's start until it has stopped: the process answers, whatever its
//   dependencies do (a database outage must not restart every pod);
// - `readiness`, `''` (the server as a whole) and each served service's full name are SERVING only while the
//   server is ready to take calls (routes installed, dependencies answering, not draining).

import { type Health, HealthCheckResponse_ServingStatus as Status } from '@billing/proto/health/v1/health_pb';
import type { ServiceImpl } from '@connectrpc/connect';
import { Code, ConnectError } from '@connectrpc/connect';
import { quote } from './errors.ts';

/** The check that the process is alive (a Kubernetes liveness probe's `grpc.service`). */
export const LIVENESS = 'liveness';
/** The check that the server takes calls (a Kubernetes readiness probe's `grpc.service`). */
export const READINESS = 'readiness';

/** The health service of a server, and the switches of what it answers. */
export interface ServerHealth {
  /** The grpc.health.v1 implementation. */
  service: ServiceImpl<typeof Health>;
  /** Sets `readiness`, `''` and every served service's status. */
  setReady(ready: boolean): void;
  /** Sets `liveness`, which is SERVING from creation. */
  setLive(live: boolean): void;
  /** Ends every Watch stream (each has sent the latest status); a server that stops calls it. */
  endWatches(): void;
}

/**
 * Creates the health service of a server serving `services` (full protobuf names). It starts live and not ready.
 */
export function createHealth(services: readonly string[]): ServerHealth {
  const readinessChecks = [READINESS, '', ...services];
  const statuses = new Map<string, Status>([[LIVENESS, Status.SERVING]]);
  for (const check of readinessChecks) statuses.set(check, Status.NOT_SERVING);
  // Each Watch stream waits on one of these; any change wakes all of them to compare.
  const watchers = new Set<() => void>();
  let ended = false;
  const wakeWatchers = () => {
    for (const wake of watchers) wake();
  };
  const set = (checks: readonly string[], serving: boolean) => {
    const status = serving ? Status.SERVING : Status.NOT_SERVING;
    let changed = false;
    for (const check of checks) {
      if (statuses.get(check) === status) continue;
      statuses.set(check, status);
      changed = true;
    }
    if (changed) wakeWatchers();
  };
  return {
    setReady: (ready) => set(readinessChecks, ready),
    setLive: (live) => set([LIVENESS], live),
    endWatches() {
      ended = true;
      wakeWatchers();
    },
    service: {
      list() {
        return { statuses: Object.fromEntries([...statuses].map(([name, status]) => [name, { status }])) };
      },
      check(req) {
        const status = statuses.get(req.service);
        if (status === undefined) throw new ConnectError(`unknown service ${quote(req.service)}`, Code.NotFound);
        return { status };
      },
      async *watch(req, context) {
        let last: Status | undefined;
        while (!context.signal.aborted) {
          const status = statuses.get(req.service) ?? Status.SERVICE_UNKNOWN;
          if (status !== last) {
            last = status;
            yield { status };
          }
          if (ended) return;
          await new Promise<void>((resolve) => {
            const wake = () => {
              watchers.delete(wake);
              context.signal.removeEventListener('abort', wake);
              resolve();
            };
            watchers.add(wake);
            context.signal.addEventListener('abort', wake);
          });
        }
      },
    },
  };
}

export { Status as ServingStatus };
