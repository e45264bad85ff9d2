// The standard gRPC health service (grpc.health.v1): Check, Watch and List, which Kubernetes probes, load
// balancers and `grpc-health-probe` call. The server as a whole is the service named ''.

import { type Health, HealthCheckResponse_ServingStatus as Status } from '@billing/proto/health/v1/health_pb';
import type { ServiceImpl } from '@connectrpc/connect';
import { Code, ConnectError } from '@connectrpc/connect';

export { Status as ServingStatus };

/** The serving status of a server and of each of its services ('' is the server as a whole). */
export interface HealthState {
  /** Sets the status of `service` ('' for the whole server); watchers are told at once. */
  setStatus(service: string, status: Status): void;
  /** The status of `service`, or undefined if it was never set. */
  status(service: string): Status | undefined;
}

/** A health state, the Health service answering from it, and `stop` that ends every Watch. */
export interface HealthServer {
  /** The statuses. */
  state: HealthState;
  /** The grpc.health.v1.Health implementation. */
  service: ServiceImpl<typeof Health>;
  /** Ends every Watch stream after it has sent the latest status (when the server shuts down). */
  stop(): void;
}

/** Creates the health state and the Health service over it. */
export function createHealth(): HealthServer {
  const statuses = new Map<string, Status>();
  const watchers = new Set<() => void>();
  const stopped = new AbortController();
  const wakeAll = () => {
    for (const wake of [...watchers]) wake();
  };
  stopped.signal.addEventListener('abort', wakeAll);

  // Resolves at the next status change, or when the call or the server ends.
  const change = (signal: AbortSignal) =>
    new Promise<void>((resolve) => {
      const wake = () => {
        watchers.delete(wake);
        signal.removeEventListener('abort', wake);
        resolve();
      };
      watchers.add(wake);
      signal.addEventListener('abort', wake);
    });

  const state: HealthState = {
    setStatus(service, status) {
      if (statuses.get(service) === status) return;
      statuses.set(service, status);
      wakeAll();
    },
    status: (service) => statuses.get(service),
  };

  return {
    state,
    stop: () => stopped.abort(),
    service: {
      check(req) {
        const status = statuses.get(req.service);
        // The protocol says an unknown service is NOT_FOUND, so that probes for a mistyped name fail.
        if (status === undefined) throw new ConnectError(`unknown service "${req.service}"`, Code.NotFound);
        return { status };
      },
      async *watch(req, context) {
        let last: Status | undefined;
        for (;;) {
          // The status is read after every wake-up, so the last one (NOT_SERVING at shutdown) is always sent
          // before the stream ends.
          const status = statuses.get(req.service) ?? Status.SERVICE_UNKNOWN;
          if (status !== last) {
            last = status;
            yield { status };
          }
          if (context.signal.aborted || stopped.signal.aborted) return;
          await change(context.signal);
        }
      },
      list() {
        return { statuses: Object.fromEntries([...statuses].map(([name, status]) => [name, { status }])) };
      },
    },
  };
}
