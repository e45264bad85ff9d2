// What the kit's one-port server costs per call: unary gRPC calls through `startServer` (protocol sniffing,
// health, reflection, error interceptor, request guard) against the same handler on a bare connect-node HTTP/2
// server (the baseline), same client, same machine, same run.
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { type ConnectRouter, createClient } from '@connectrpc/connect';
import { connectNodeAdapter, createGrpcTransport } from '@connectrpc/connect-node';
import { pino } from 'pino';
import { errorInterceptor } from '../src/errors.ts';
import { requestGuard } from '../src/request-guard.ts';
import { startServer } from '../src/server.ts';

const CALLS = Number(process.env.BENCH_CALLS ?? 20_000);
const IN_FLIGHT = Number(process.env.BENCH_IN_FLIGHT ?? 50);
const logger = pino({ level: 'silent' });

const routes = (router: ConnectRouter) => {
  router.service(CatalogService, { getFeature: () => ({ feature: { key: 'sso', name: 'SSO' } }) });
};

async function measure(baseUrl: string): Promise<{ perSecond: number; p50: number; p99: number }> {
  const client = createClient(CatalogService, createGrpcTransport({ baseUrl }));
  for (let i = 0; i < 500; i++) await client.getFeature({ key: 'sso' });
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next++ < CALLS) {
        const t = performance.now();
        await client.getFeature({ key: 'sso' });
        latencies.push(performance.now() - t);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  return { perSecond: CALLS / seconds, p50: at(0.5), p99: at(0.99) };
}

const bare = http2.createServer(connectNodeAdapter({ routes }));
await new Promise<void>((resolve) => bare.listen(0, '127.0.0.1', resolve));
const baseline = await measure(`http://127.0.0.1:${(bare.address() as AddressInfo).port}`);
bare.close();

const kit = await startServer({
  host: '127.0.0.1',
  port: 0,
  routes,
  services: [CatalogService],
  logger,
  interceptors: [errorInterceptor('billing.bench', logger), requestGuard()],
});
const measured = await measure(`http://127.0.0.1:${kit.port}`);
await kit.shutdown({ graceMs: 1_000 });

const row = (name: string, r: { perSecond: number; p50: number; p99: number }) =>
  `${name.padEnd(28)} ${r.perSecond.toFixed(0).padStart(8)} calls/s   p50 ${r.p50.toFixed(2)} ms   p99 ${r.p99.toFixed(2)} ms`;
console.log(`unary gRPC, ${CALLS} calls, ${IN_FLIGHT} in flight, one connection`);
console.log(row('baseline: bare connect-node', baseline));
console.log(row('kit server (one port)', measured));
console.log(`ratio kit / baseline: ${(measured.perSecond / baseline.perSecond).toFixed(2)}`);
