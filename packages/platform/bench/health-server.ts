// The at-rest benchmark's second baseline: a process that only serves the gRPC health check (SERVING) from a bare
// connect-node HTTP/2 server on HEALTH_PORT, the least any service does.
import http2 from 'node:http2';
import { Health, HealthCheckResponse_ServingStatus } from '@billing/proto/health/v1/health_pb';
import { connectNodeAdapter } from '@connectrpc/connect-node';

const server = http2.createServer(
  connectNodeAdapter({
    routes(router) {
      router.service(Health, { check: () => ({ status: HealthCheckResponse_ServingStatus.SERVING }) });
    },
  }),
);
server.listen(Number(process.env.HEALTH_PORT), '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
