// A hostile burst, in a process of its own: BENCH_HOSTILE_REQUESTS requests (2,500 unless set) to the service at
// BENCH_URL over gRPC (@grpc/grpc-js), BENCH_HOSTILE_IN_FLIGHT at once, each one of the large shapes below for one
// of the unary RPCs of BENCH_SERVICE (its own services and the AdminService each serves), in turn. Each shape is as
// large as the biggest message a server may read (BENCH_HOSTILE_BYTES, a comma-separated list: each shape is sent
// at each size; the kit's default limit before any was set, 8 MiB, unless set), and costs the most memory per byte
// that protobuf decoding allows:
// - a huge list: a repeated field holding as many of its cheapest elements as fit (an empty message in 2 bytes,
//   an empty string in 2, a packed number in 1), the shapes of the hostile-input test scaled up;
// - a huge map: as many entries with distinct short keys as fit;
// - a huge string: one string field holding the whole message;
// - deep structs: a google.protobuf.Struct field holding values nested 90 deep (under protobuf-es's limit of
//   100), side by side until the message is full.
// Shapes are built on the wire, for fields at the top of the request and one message field down. The process
// prints how the service answered (counts by code) as JSON.
import { AdminService } from '@billing/proto/billing/admin/v1/admin_service_pb';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { CustomerService } from '@billing/proto/billing/subscription/v1/customer_service_pb';
import { SubscriptionService } from '@billing/proto/billing/subscription/v1/subscription_service_pb';
import { UsageService } from '@billing/proto/billing/usage/v1/usage_service_pb';
import type { DescService } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { hostileCalls } from './hostile-shapes.ts';

const REQUESTS = Number(process.env.BENCH_HOSTILE_REQUESTS ?? 2_500);
const IN_FLIGHT = Number(process.env.BENCH_HOSTILE_IN_FLIGHT ?? 8);
/** The kit's limit of a request message before any was set per service (server.ts). */
const FORMER_READ_MAX_BYTES = 8 * 1024 * 1024;
const SIZES = (process.env.BENCH_HOSTILE_BYTES ?? String(FORMER_READ_MAX_BYTES)).split(',').map(Number);

const servedBy: Record<string, readonly DescService[]> = {
  catalog: [CatalogService, AdminService],
  subscription: [CustomerService, SubscriptionService, AdminService],
  usage: [UsageService, AdminService],
};
const services = servedBy[process.env.BENCH_SERVICE ?? ''];
if (!services) throw new Error(`BENCH_SERVICE must be one of ${Object.keys(servedBy).join(', ')}`);

const calls = hostileCalls(services, SIZES);
if (calls.length === 0) throw new Error('no shape to send');

const client = new grpc.Client(new URL(process.env.BENCH_URL ?? '').host, grpc.credentials.createInsecure(), {
  'grpc.max_send_message_length': -1,
});
const send = (path: string, bytes: Buffer) =>
  new Promise<string>((resolve) => {
    client.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      bytes,
      (error) => resolve(error ? (grpc.status[error.code] ?? String(error.code)) : 'OK'),
    );
  });

const codes: Record<string, number> = {};
let next = 0;
await Promise.all(
  Array.from({ length: IN_FLIGHT }, async () => {
    for (let n = next++; n < REQUESTS; n = next++) {
      const call = calls[n % calls.length];
      if (!call) break;
      const code = await send(call.path, call.bytes);
      codes[code] = (codes[code] ?? 0) + 1;
    }
  }),
);
process.stdout.write(JSON.stringify({ requests: REQUESTS, shapes: calls.length, codes }));
client.close();
