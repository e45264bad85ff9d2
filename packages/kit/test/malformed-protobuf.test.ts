// A request message that cannot be decoded is the caller's error: INVALID_ARGUMENT (not INTERNAL), over the
// Connect protocol (unary, binary), gRPC and gRPC-Web, and it is not logged as a server failure.
import http from 'node:http';
import http2 from 'node:http2';
import { Writable } from 'node:stream';
import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { Code } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { pino } from 'pino';
import { errorInterceptor } from '../src/errors.ts';
import { type ServerHandle, startServer } from '../src/server.ts';

const PATH = `/${CatalogService.typeName}/${CatalogService.method.getFeature.name}`;

const MALFORMED: [string, Buffer, string][] = [
  // Field 1 (key, a string) says 5 bytes and sends 2.
  ['truncated bytes', Buffer.from([0x0a, 0x05, 0x61, 0x62]), 'premature EOF'],
  // Field 5 with wire type 7, which does not exist.
  ['a bad wire type', Buffer.from([0x2f, 0x01]), 'wire type 7'],
];

const logged: { level: number; msg: string }[] = [];
let server: ServerHandle;
let handled = 0;
beforeAll(async () => {
  const logger = pino(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        logged.push(JSON.parse(chunk.toString()));
        done();
      },
    }),
  );
  server = await startServer({
    host: '127.0.0.1',
    port: 0,
    services: [CatalogService],
    logger,
    interceptors: [errorInterceptor('billing.catalog', logger)],
    routes(router) {
      router.service(CatalogService, {
        getFeature() {
          handled++;
          return { feature: { key: 'sso', name: 'SSO' } };
        },
      });
    },
  });
});
afterAll(async () => {
  await server.shutdown({ graceMs: 1_000 });
  // None reached the handler, and none was logged as a failure of the server (pino's error level is 50).
  expect(handled).toBe(0);
  expect(logged.filter((line) => line.level >= 50)).toEqual([]);
});

/** The 5-byte gRPC envelope of one uncompressed message. */
function envelope(message: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

/** Posts `body` over HTTP/1.1; resolves to the status, headers and body of the answer. */
function post(contentType: string, body: Buffer) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: server.port, method: 'POST', path: PATH, headers: { 'content-type': contentType } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** The grpc-status and grpc-message of a gRPC-Web answer: its headers, or its trailer frame (flag 0x80). */
function grpcWebStatus(answer: { headers: http.IncomingHttpHeaders; body: Buffer }) {
  const fields = new Map(Object.entries(answer.headers).map(([name, value]) => [name, String(value)]));
  for (let at = 0; at + 5 <= answer.body.length; ) {
    const length = answer.body.readUInt32BE(at + 1);
    if (answer.body[at] === 0x80) {
      for (const line of answer.body
        .subarray(at + 5, at + 5 + length)
        .toString()
        .split('\r\n')) {
        const colon = line.indexOf(':');
        if (colon > 0) fields.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
      }
    }
    at += 5 + length;
  }
  return { status: Number(fields.get('grpc-status')), message: decodeURIComponent(fields.get('grpc-message') ?? '') };
}

describe.each(MALFORMED)('%s', (_name, message, problem) => {
  test('Connect (unary, binary): HTTP 400, invalid_argument', async () => {
    const answer = await post('application/proto', message);
    expect(answer.status).toBe(400);
    const error = JSON.parse(answer.body.toString()) as { code: string; message: string };
    expect(error.code).toBe('invalid_argument');
    expect(error.message).toContain(problem);
  });

  test('gRPC: status 3 (INVALID_ARGUMENT)', async () => {
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    try {
      const stream = session.request({
        ':method': 'POST',
        ':path': PATH,
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => {
        stream.once('trailers', resolve);
        // A trailers-only answer carries the status in its headers.
        stream.once('response', (headers) => {
          if (headers['grpc-status'] !== undefined) resolve(headers);
        });
      });
      stream.end(envelope(message));
      stream.resume();
      const status = await trailers;
      expect(Number(status['grpc-status'])).toBe(Code.InvalidArgument);
      expect(decodeURIComponent(String(status['grpc-message']))).toContain(problem);
    } finally {
      session.close();
    }
  });

  test('gRPC-Web: status 3 (INVALID_ARGUMENT)', async () => {
    const answer = await post('application/grpc-web+proto', envelope(message));
    const status = grpcWebStatus(answer);
    expect(status.status).toBe(Code.InvalidArgument);
    expect(status.message).toContain(problem);
  });
});
