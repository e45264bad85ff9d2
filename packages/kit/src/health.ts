// The standard gRPC health service (grpc.health.v1), which Kubernetes probes and load balancers call.

import { type Health, HealthCheckResponse_ServingStatus as Status } from '@billing/proto/health/v1/health_pb';
import type { ServiceImpl } from '@connectrpc/connect';
import { Code, ConnectError } from '@connectrpc/connect';
import { quote } from './errors.ts';

/** The serving status of a server and of each of its services ('' is the server as a whole). */
export interface HealthState {
  /** Sets the status of `service` ('' for the whole server). */
  setStatus(service: string, status: Status): void;
  /** The status of `service`, or undefined if unknown. */
  status(service: string): Status | undefined;
}

/** Creates the health state and the Health service over it. */
export function createHealth(): { state: HealthState; service: ServiceImpl<typeof Health> } {
  const statuses = new Map<string, Status>();
  const watchers = new Set<() => void>();
  const state: HealthState = {
    setStatus(service, status) {
      statuses.set(service, status);
      for (const wake of watchers) wake();
    },
    status: (service) => statuses.get(service),
  };
  return {
    state,
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
