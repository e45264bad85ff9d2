// One TCP port serving Connect (binary and JSON), gRPC and gRPC-Web, over HTTP/2 cleartext with prior
// knowledge (as gRPC clients and `buf curl --http2-prior-knowledge` speak it) and over HTTP/1.1 (curl,
// browsers, Connect JSON). A plaintext Node HTTP/2 server cannot fall back to HTTP/1.1 by itself
// (`allowHTTP1` needs TLS and ALPN), so a plain TCP server reads each connection's first bytes: the HTTP/2
// connection preface hands it to an HTTP/2 server, anything else to an HTTP/1.1 server, both running the same
// connect-node handler. Every server also serves grpc.health.v1 and gRPC reflection, and shuts down gracefully.

import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { file_google_rpc_error_details } from '@billing/proto/google/rpc/error_details_pb';
import { ServerReflection } from '@billing/proto/grpc/reflection/v1/reflection_pb';
import { ServerReflection as ServerReflectionV1alpha } from '@billing/proto/grpc/reflection/v1alpha/reflection_pb';
import { Health } from '@billing/proto/health/v1/health_pb';
import type { DescService } from '@bufbuild/protobuf';
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createContextKey,
  createContextValues,
  type Interceptor,
} from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { createHealth, type HealthState, ServingStatus } from './health.ts';
import type { Logger } from './log.ts';
import { reflectionServices } from './reflection.ts';

/** Options of a server. */
export interface ServerOptions {
  /** Interface to listen on, e.g. `127.0.0.1` or `0.0.0.0`. */
  host: string;
  /** Port; 0 picks a free one (the handle says which). */
  port: number;
  /** Registers the service's handlers. */
  routes: (router: ConnectRouter) => void;
  /**
   * The protobuf services served, listed by reflection and given a health status. Services registered by
   * `routes` are added on their own; list here any other whose schema clients should discover.
   */
  services?: readonly DescService[];
  /** Interceptors, outermost first (the error interceptor belongs first). Health calls skip them. */
  interceptors?: Interceptor[];
  /** Logger. */
  logger: Logger;
  /** Largest request message accepted, in bytes (hostile input is refused before it is read whole). */
  readMaxBytes?: number;
}

/** A running server. */
export interface ServerHandle {
  /** The bound port. */
  port: number;
  /** Health statuses served by grpc.health.v1: SERVING after start, NOT_SERVING once shutdown begins. */
  health: HealthState;
  /**
   * Stops accepting connections and calls, lets the calls in flight finish (HTTP/2 connections get a
   * GOAWAY, HTTP/1.1 ones close after their response), then closes. After `graceMs` it aborts the calls
   * still running (their `context.signal`) and closes every connection. Safe to call twice: the second
   * call returns the same promise.
   */
  shutdown(options: { graceMs: number }): Promise<void>;
}

/** Every HTTP/2 connection starts with these 24 bytes (RFC 9113, section 3.4); no HTTP/1.1 request does. */
const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** How long a new connection may stay silent before it is closed (port scanners, stuck clients). */
const FIRST_BYTES_TIMEOUT_MS = 10_000;

/**
 * What a connection speaks, from its first bytes: `http2` once they are the whole HTTP/2 preface, `http1` as
 * soon as they differ from it, undefined while they are a strict prefix of it (it may arrive in pieces).
 */
export function protocolOf(head: Buffer): 'http2' | 'http1' | undefined {
  const n = Math.min(head.length, HTTP2_PREFACE.length);
  if (!head.subarray(0, n).equals(HTTP2_PREFACE.subarray(0, n))) return 'http1';
  return n === HTTP2_PREFACE.length ? 'http2' : undefined;
}

// Whether a call arrived after shutdown began; such calls are refused before their handler runs.
const arrivedDuringShutdown = createContextKey(false, { description: 'call arrived during shutdown' });

const SHUTTING_DOWN = 'the server is shutting down';

/** Starts a server; resolves once it listens. */
export async function startServer(options: ServerOptions): Promise<ServerHandle> {
  const log = options.logger;
  const health = createHealth();
  // Aborted when shutdown begins: reflection streams end (health Watch streams end via health.stop()).
  const draining = new AbortController();
  // Aborted when the grace period is over: every handler's context.signal follows it.
  const forced = new AbortController();
  let stopping = false;
  let served: string[] = [];

  const handler = connectNodeAdapter({
    interceptors: options.interceptors,
    readMaxBytes: options.readMaxBytes ?? 8 * 1024 * 1024,
    shutdownSignal: forced.signal,
    // Read synchronously when the request arrives, so "accepted" means: arrived before shutdown began.
    contextValues: () => createContextValues().set(arrivedDuringShutdown, stopping),
    requestGate(context) {
      // Refused calls never reach a handler; clients see UNAVAILABLE and may retry on another instance.
      if (context.values.get(arrivedDuringShutdown)) throw new ConnectError(SHUTTING_DOWN, Code.Unavailable);
    },
    routes(router) {
      options.routes(router);
      const services = new Map<string, DescService>();
      for (const s of options.services ?? []) services.set(s.typeName, s);
      for (const h of router.handlers) services.set(h.service.typeName, h.service);
      served = [...services.keys()];
      // Health skips the service's interceptors (probes every few seconds are not worth a log line, and must
      // not need credentials) and answers during shutdown too, so that probes read NOT_SERVING.
      router.service(Health, health.service, { interceptors: [], requestGate: undefined });
      // The error details are listed too: without them, buf curl and grpcurl print every error's details
      // as undecoded bytes, since no service imports their file.
      const reflection = reflectionServices([...services.values(), Health], {
        stopped: draining.signal,
        extraFiles: [file_google_rpc_error_details],
      });
      router.service(ServerReflection, reflection.v1);
      router.service(ServerReflectionV1alpha, reflection.v1alpha);
    },
  });

  let inFlight = 0;
  // HTTP/1.1 connections and how many of their requests are being answered: an idle one is closed at
  // shutdown, a busy one once its response is written. (http.Server's own tracking, closeIdleConnections,
  // only works for a server that listens itself, which this one does not.)
  const http1Busy = new Map<net.Socket, number>();

  const serve = (
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: http.ServerResponse | http2.Http2ServerResponse,
  ) => {
    inFlight++;
    if (req instanceof http.IncomingMessage && res instanceof http.ServerResponse) {
      const socket = req.socket;
      http1Busy.set(socket, (http1Busy.get(socket) ?? 0) + 1);
      // During shutdown the client must not send another request on this connection.
      if (stopping) res.setHeader('connection', 'close');
      res.once('close', () => {
        const busy = (http1Busy.get(socket) ?? 1) - 1;
        if (http1Busy.has(socket)) http1Busy.set(socket, busy);
        if (stopping && busy === 0) socket.destroySoon();
      });
    }
    res.once('close', () => inFlight--);
    handler(req, res);
  };

  const h2 = http2.createServer({}, serve);
  const h1 = http.createServer(serve);
  const sockets = new Set<net.Socket>();
  const sniffing = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();

  h2.on('session', (session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    if (stopping) session.close();
  });
  h2.on('sessionError', (err) => log.debug({ err }, 'http/2 session error'));

  const dispatch = (socket: net.Socket, head: Buffer, isHttp2: boolean) => {
    sniffing.delete(socket);
    // Put the bytes read back. An HTTP/2 session takes what is buffered first (Node feeds it to the session
    // as if just received) and then reads the socket's handle natively, so the socket must stay paused; the
    // HTTP/1.1 server reads through the stream, so it is resumed.
    socket.pause();
    socket.unshift(head);
    if (isHttp2) {
      h2.emit('connection', socket);
    } else {
      http1Busy.set(socket, 0);
      socket.once('close', () => http1Busy.delete(socket));
      h1.emit('connection', socket);
      socket.resume();
    }
  };

  const tcp = net.createServer({ noDelay: true, keepAlive: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // Without a listener, a reset connection's error would crash the process.
    socket.on('error', (err) => log.debug({ err }, 'connection error'));
    if (stopping) {
      socket.destroy();
      return;
    }
    sniffing.add(socket);
    const onTimeout = () => socket.destroy();
    socket.setTimeout(FIRST_BYTES_TIMEOUT_MS);
    socket.once('timeout', onTimeout);
    const chunks: Buffer[] = [];
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      const head = chunks.length === 1 ? chunk : Buffer.concat(chunks);
      const protocol = protocolOf(head);
      if (protocol === undefined) return;
      socket.off('data', onData);
      socket.off('timeout', onTimeout);
      socket.setTimeout(0);
      dispatch(socket, head, protocol === 'http2');
    };
    socket.on('data', onData);
  });

  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen({ port: options.port, host: options.host }, () => {
      tcp.off('error', reject);
      resolve();
    });
  });
  // Accept errors (EMFILE...) after start are logged; the server keeps serving the connections it has.
  tcp.on('error', (err) => log.error({ err }, 'server socket error'));
  const address = tcp.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;

  const setAll = (status: ServingStatus) => {
    health.state.setStatus('', status);
    for (const name of served) health.state.setStatus(name, status);
  };
  setAll(ServingStatus.SERVING);
  log.info({ host: options.host, port, services: served }, 'listening');

  let stopped: Promise<void> | undefined;
  const shutdown = async (graceMs: number) => {
    stopping = true;
    setAll(ServingStatus.NOT_SERVING);
    health.stop();
    draining.abort();
    log.info({ in_flight: inFlight, grace_ms: graceMs }, 'shutting down: refusing new calls, finishing calls in flight');
    // Resolves when every connection has closed (net.Server waits for them after close()).
    const closed = new Promise<void>((resolve) => tcp.close(() => resolve()));
    // GOAWAY: the client opens no new stream on the connection; open streams finish, then it closes.
    for (const session of sessions) session.close();
    // Connections that have not said what they speak carry no call yet.
    for (const socket of sniffing) socket.destroy();
    for (const [socket, busy] of http1Busy) if (busy === 0) socket.destroySoon();

    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'grace over'>((resolve) => {
      timer = setTimeout(() => resolve('grace over'), graceMs);
    });
    const outcome = await Promise.race([closed.then(() => 'drained' as const), graceOver]);
    clearTimeout(timer);
    if (outcome === 'drained') {
      log.info('server stopped');
      return;
    }
    const unfinished = inFlight;
    forced.abort(new ConnectError(SHUTTING_DOWN, Code.Unavailable));
    // One turn for handlers to see the abort and answer with it before their connections go.
    await new Promise((resolve) => setImmediate(resolve));
    for (const session of sessions) session.destroy();
    for (const socket of sockets) socket.destroy();
    await closed;
    log.warn({ unfinished }, 'server stopped; calls still running after the grace period were cut off');
  };

  return {
    port,
    health: health.state,
    shutdown({ graceMs }) {
      stopped ??= shutdown(graceMs);
      return stopped;
    },
  };
}
