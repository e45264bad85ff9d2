// Requests written by hand, byte for byte, as a broken or hostile client sends them: a call whose body is any
// bytes at all over gRPC, gRPC-Web or Connect, and connections that stop half-way through the HTTP/2 preface, a
// frame, or a request.
import http from 'node:http';
import http2 from 'node:http2';
import { connect } from 'node:net';
import {
  HealthCheckRequestSchema,
  HealthCheckResponse_ServingStatus,
  HealthCheckResponseSchema,
} from '@billing/proto/health/v1/health_pb';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { Code } from '@connectrpc/connect';

/** The protocols a call can be written in. */
export type WireProtocol = 'gRPC' | 'gRPC-Web' | 'Connect' | 'Connect streaming';

/** The answer to a hand-written call: its code by name, and its message. */
export interface WireAnswer {
  /** The code by name (`InvalidArgument`), or `ok`. */
  code: 'ok' | keyof typeof Code;
  /** The error message, if any. */
  message: string;
}

/** A message in the envelope of gRPC, gRPC-Web and Connect streaming: a flags byte, a 32-bit length, the bytes. */
export function envelope(bytes: Uint8Array, flags = 0): Buffer {
  const out = Buffer.alloc(5 + bytes.length);
  out.writeUInt8(flags, 0);
  out.writeUInt32BE(bytes.length, 1);
  out.set(bytes, 5);
  return out;
}

/** The envelopes of a body, in order. */
function envelopes(body: Buffer): { flags: number; data: Buffer }[] {
  const out: { flags: number; data: Buffer }[] = [];
  for (let at = 0; at + 5 <= body.length; ) {
    const length = body.readUInt32BE(at + 1);
    out.push({ flags: body.readUInt8(at), data: body.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return out;
}

const grpcCode = (status: string | undefined): WireAnswer['code'] =>
  status === undefined || status === '0' ? 'ok' : (Code[Number(status)] as keyof typeof Code);

/** Connect's codes in JSON (`invalid_argument`) by their name in `Code` (`InvalidArgument`). */
const connectCode = (code: unknown): WireAnswer['code'] =>
  typeof code === 'string'
    ? (code.replace(/(^|_)([a-z])/g, (_, __, c: string) => c.toUpperCase()) as keyof typeof Code)
    : 'ok';

/** Sends one HTTP/2 request and resolves with its status, headers, body and trailers. */
function http2Request(baseUrl: string, headers: http2.OutgoingHttpHeaders, body: Buffer) {
  return new Promise<{
    status: number;
    headers: http2.IncomingHttpHeaders;
    trailers: http2.IncomingHttpHeaders;
    body: Buffer;
  }>((resolve, reject) => {
    const session = http2.connect(baseUrl);
    session.on('error', reject);
    const stream = session.request({ ':method': 'POST', ...headers });
    const chunks: Buffer[] = [];
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    stream.on('response', (h) => {
      responseHeaders = h;
    });
    stream.on('trailers', (t) => {
      trailers = t;
    });
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', reject);
    stream.on('end', () => {
      session.close();
      resolve({
        status: Number(responseHeaders[':status']),
        headers: responseHeaders,
        trailers,
        body: Buffer.concat(chunks),
      });
    });
    stream.end(body);
  });
}

/** Sends one HTTP/1.1 request and resolves with its status, headers and body. */
function http1Request(baseUrl: string, path: string, headers: http.OutgoingHttpHeaders, body: Buffer) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
    const req = http.request(`${baseUrl}${path}`, { method: 'POST', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Calls `/<service>/<method>` with `message` as the request's protobuf bytes, in `protocol`: gRPC over HTTP/2,
 * gRPC-Web and Connect (unary) over HTTP/1.1, Connect streaming over HTTP/2.
 */
export async function callWithBytes(
  baseUrl: string,
  protocol: WireProtocol,
  path: string,
  message: Uint8Array,
): Promise<WireAnswer> {
  if (protocol === 'gRPC') {
    const res = await http2Request(
      baseUrl,
      { ':path': path, 'content-type': 'application/grpc+proto', te: 'trailers' },
      envelope(message),
    );
    const status = res.trailers['grpc-status'] ?? res.headers['grpc-status'];
    const text = res.trailers['grpc-message'] ?? res.headers['grpc-message'];
    return { code: grpcCode(String(status)), message: decodeURIComponent(String(text ?? '')) };
  }
  if (protocol === 'gRPC-Web') {
    const res = await http1Request(baseUrl, path, { 'content-type': 'application/grpc-web+proto' }, envelope(message));
    // The trailers are the last envelope (flag 0x80) as header lines, or the headers of a trailers-only answer.
    const trailer = envelopes(res.body).find((e) => (e.flags & 0x80) !== 0);
    const lines = trailer ? trailer.data.toString('utf8').split('\r\n') : [];
    const field = (name: string) =>
      lines
        .find((l) => l.toLowerCase().startsWith(`${name}:`))
        ?.slice(name.length + 1)
        .trim() ?? (res.headers[name] as string | undefined);
    return { code: grpcCode(field('grpc-status')), message: decodeURIComponent(field('grpc-message') ?? '') };
  }
  if (protocol === 'Connect') {
    const res = await http1Request(baseUrl, path, { 'content-type': 'application/proto' }, Buffer.from(message));
    if (res.status === 200) return { code: 'ok', message: '' };
    const error = JSON.parse(res.body.toString('utf8')) as { code?: string; message?: string };
    return { code: connectCode(error.code), message: error.message ?? '' };
  }
  const res = await http2Request(
    baseUrl,
    { ':path': path, 'content-type': 'application/connect+proto' },
    envelope(message),
  );
  // The end of a Connect stream is an envelope with flag 0x02 holding JSON, with the error if the call failed.
  const last = envelopes(res.body).find((e) => (e.flags & 0x02) !== 0);
  const end = last ? (JSON.parse(last.data.toString('utf8')) as { error?: { code?: string; message?: string } }) : {};
  return { code: connectCode(end.error?.code), message: end.error?.message ?? '' };
}

/**
 * A grpc.health.v1 Check of `service` on a connection of its own, closed once answered: the serving status by
 * name, or the code of the failed call.
 */
export async function checkHealthOnce(baseUrl: string, service: string): Promise<string> {
  const request = toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service }));
  const res = await http2Request(
    baseUrl,
    { ':path': '/grpc.health.v1.Health/Check', 'content-type': 'application/grpc+proto', te: 'trailers' },
    envelope(request),
  );
  const code = grpcCode(String(res.trailers['grpc-status'] ?? res.headers['grpc-status']));
  const answer = envelopes(res.body)[0];
  if (code !== 'ok' || !answer) return code;
  return HealthCheckResponse_ServingStatus[fromBinary(HealthCheckResponseSchema, answer.data).status] ?? 'UNKNOWN';
}

/** The HTTP/2 connection preface a client sends first. */
export const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** An HTTP/2 frame header: a 24-bit length, the type, the flags, the stream. */
export function frameHeader(length: number, type: number, flags: number, stream: number): Buffer {
  const out = Buffer.alloc(9);
  out.writeUIntBE(length, 0, 3);
  out.writeUInt8(type, 3);
  out.writeUInt8(flags, 4);
  out.writeUInt32BE(stream, 5);
  return out;
}

/** An empty SETTINGS frame: the rest of a client's preface. */
export const EMPTY_SETTINGS = frameHeader(0, 0x4, 0, 0);

/** How long the server held a connection open after the test's last bytes, or `open` if it still held it. */
export type HeldFor = number | 'open';

/**
 * Opens a TCP connection to 127.0.0.1:`port`, writes `bytes`, and resolves with how long (in ms, from the write)
 * the server took to close it; gives up after `limitMs` and closes it itself (`open`).
 */
export function heldAfterWriting(port: number, bytes: Buffer, limitMs: number): Promise<HeldFor> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let wroteAt = Date.now();
    const timer = setTimeout(() => {
      socket.destroy();
      resolve('open');
    }, limitMs);
    socket.on('connect', () => {
      wroteAt = Date.now();
      if (bytes.length > 0) socket.write(bytes);
    });
    // Whatever the server sends (its SETTINGS, a GOAWAY, an HTTP/1.1 error) is read and left.
    socket.on('data', () => undefined);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - wroteAt);
    });
  });
}
