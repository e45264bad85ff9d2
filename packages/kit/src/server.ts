// One TCP port serving Connect, gRPC and gRPC-Web, over HTTP/2 cleartext (prior knowledge, as gRPC clients
// speak) and HTTP/1.1 (curl, browsers, Connect JSON): each connection's first bytes say which. Every server
// also serves grpc.health.v1 and gRPC reflection, bounds slow, idle and surplus connections on both protocols,
// and shuts down gracefully.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { getSystemErrorMessage } from 'node:util';
import { ServerReflection } from '@billing/proto/grpc/reflection/v1/reflection_pb';
import { ServerReflection as ServerReflectionV1alpha } from '@billing/proto/grpc/reflection/v1alpha/reflection_pb';
import { Health } from '@billing/proto/health/v1/health_pb';
import type { DescService } from '@bufbuild/protobuf';
import type { ConnectRouter, Interceptor, MethodImpl } from '@connectrpc/connect';
import { Code, ConnectError } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import type { Logger } from 'pino';
import { createHealth } from './health.ts';
import { reflectionServices } from './reflection.ts';
import { countRequestValues, DEFAULT_REQUEST_LIMITS, drainUnreadRequestWhenAnswered } from './request-limits.ts';

/** What a server serves, and how. */
export interface ServeOptions {
  /**
   * Registers the service's handlers. Without them the server starts anyway (health and reflection answer, the
   * services' calls answer UNAVAILABLE) until `ServerHandle.route` installs them.
   */
  routes?: (router: ConnectRouter) => void;
  /** The protobuf services served, for reflection and health. */
  services: readonly DescService[];
  /** Interceptors, outermost first. */
  interceptors?: Interceptor[];
  /** Logger. */
  logger: Logger;
  /** Largest request message accepted, in bytes (hostile input is refused before it is read whole). */
  readMaxBytes?: number;
  /** Most values (messages, list elements, map entries) one request message may hold (request-limits.ts). */
  maxRequestValues?: number;
  /**
   * Longest a client may take to send a connection's first bytes, and then over HTTP/2 the preface and its first
   * request's headers, over HTTP/1.1 each request's headers, before the connection is closed (slow-client
   * attacks); default 10 s, at most `requestTimeoutMs`.
   */
  headersTimeoutMs?: number;
  /**
   * Longest a client may take to send a whole request (headers and body) once it began: HTTP/1.1 answers 408
   * and closes the connection, HTTP/2 resets the stream (CANCEL). Over HTTP/2 a call whose request is a stream
   * (client streaming, bidi) is exempt: its request lasts as long as the call. Default 30 s.
   */
  requestTimeoutMs?: number;
  /**
   * A connection with no call in flight for this long is closed: HTTP/2 with GOAWAY, HTTP/1.1 (between
   * keep-alive requests) after at most 5 s. A long server stream (Health.Watch) is a call in flight. Default 5 min.
   */
  idleTimeoutMs?: number;
  /** Client connections held at once; a connection past it is closed as it arrives. Default 2048. */
  maxConnections?: number;
}

/** Options of a server that binds its own port. */
export interface ServerOptions extends ServeOptions {
  /** Interface to listen on. */
  host: string;
  /** Port; 0 picks a free one. */
  port: number;
}

/** A port that is bound but not yet served: connections that arrive meanwhile wait for the server. */
export interface Listener {
  /** The interface it is bound on. */
  readonly host: string;
  /** The bound port. */
  readonly port: number;
  /**
   * Hands every connection to `handle`, first those that arrived before; call once. From then on, a connection
   * arriving while `limit.maxConnections` are open is closed at once, and `limit.refused` is called.
   */
  accept(handle: (socket: net.Socket) => void, limit: ConnectionLimit): void;
  /** Stops listening and drops the connections not handed over; resolves once the port is free. */
  close(): Promise<void>;
}

/** How many connections a listener holds at once, and what it calls for each one it refuses past that. */
export interface ConnectionLimit {
  maxConnections: number;
  refused(): void;
}

/**
 * The port asked for cannot be bound: the interface is not this machine's, the port is not allowed, or it is in
 * use (PortInUseError).
 */
export class ListenError extends Error {
  override name = 'ListenError';
  /** The interface asked for. */
  readonly host: string;
  /** The port asked for. */
  readonly port: number;
  /** What is wrong, as one line says it after the address (`cannot listen: address not available`). */
  readonly problem: string;

  constructor(host: string, port: number, problem: string, cause: unknown) {
    super(`${host}:${port}: ${problem}`, { cause });
    this.host = host;
    this.port = port;
    this.problem = problem;
  }
}

/** The port asked for is bound by another process. */
export class PortInUseError extends ListenError {
  override name = 'PortInUseError';

  constructor(host: string, port: number, cause: unknown) {
    super(host, port, 'the port is already in use', cause);
  }
}

/** The ListenError of a failed listen: the system's own words for it (`address not available`). */
function listenError(host: string, port: number, err: NodeJS.ErrnoException): ListenError {
  if (err.code === 'EADDRINUSE') return new PortInUseError(host, port, err);
  const why = typeof err.errno === 'number' ? getSystemErrorMessage(err.errno) : err.message;
  return new ListenError(host, port, `cannot listen: ${why}`, err);
}

/**
 * Binds a port. A service binds it before it opens anything, so a port it cannot bind (in use, or on an
 * interface that is not this machine's) stops it at once with ListenError, rather than after its database and
 * bus were opened.
 */
export async function bindListener(host: string, port: number): Promise<Listener> {
  // Until a server takes over, a connection waits; one that resets or closes meanwhile is only forgotten.
  // Each waiting socket maps to what detaches those listeners when the server takes it.
  const waiting = new Map<net.Socket, () => void>();
  let handle = (socket: net.Socket) => {
    const drop = () => {
      waiting.delete(socket);
      socket.destroy();
    };
    socket.on('error', drop);
    socket.on('close', drop);
    waiting.set(socket, () => {
      socket.off('error', drop);
      socket.off('close', drop);
    });
  };
  const tcp = net.createServer((socket) => handle(socket));
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', (err: NodeJS.ErrnoException) => reject(listenError(host, port, err)));
    tcp.listen(port, host, () => resolve());
  });
  const address = tcp.address();
  return {
    host,
    port: typeof address === 'object' && address ? address.port : port,
    accept(take, limit) {
      tcp.maxConnections = limit.maxConnections;
      tcp.on('drop', limit.refused);
      handle = take;
      for (const [socket, detach] of waiting) {
        detach();
        take(socket);
      }
      waiting.clear();
    },
    close() {
      for (const socket of waiting.keys()) socket.destroy();
      waiting.clear();
      return new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  };
}

/** A running server. */
export interface ServerHandle {
  /** The bound port. */
  port: number;
  /**
   * Installs the service's handlers, for a server started without them; until then its calls answer
   * UNAVAILABLE ("starting"). Throws if it already has them.
   */
  route(routes: (router: ConnectRouter) => void): void;
  /**
   * Says whether the service can take calls (its dependencies answer): health's `readiness`, `''` and each
   * service's status are SERVING while it is ready, has its routes and is not draining. A server started with
   * its routes starts ready, one started without them not ready.
   */
  setReady(ready: boolean): void;
  /**
   * Stops accepting connections and calls, lets the calls in flight finish, then closes; after `graceMs`
   * it closes whatever is left. Safe to call twice.
   */
  shutdown(options: { graceMs: number }): Promise<void>;
}

const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0');
// Calls in flight on one HTTP/2 connection.
const MAX_STREAMS = 1_000;

/** An HTTP/2 connection, as the server's checks of slow and idle connections see it. */
interface Http2Connection {
  session: http2.ServerHttp2Session;
  /** When its TCP connection was accepted (performance.now()). */
  acceptedAt: number;
  /** Whether the headers of a first request have arrived. */
  greeted: boolean;
  /** Streams open. */
  streams: number;
  /** When its last stream closed. */
  idleSince: number;
}

/** Starts a server; resolves once it listens. */
export async function startServer(options: ServerOptions): Promise<ServerHandle> {
  return startServerOn(await bindListener(options.host, options.port), options);
}

/** Starts a server on a bound port; the connections that waited for it are served first. */
export function startServerOn(listener: Listener, options: ServeOptions): ServerHandle {
  const health = createHealth(options.services.map((service) => service.typeName));
  const reflection = reflectionServices([...options.services, Health]);
  const adapter = (routes: (router: ConnectRouter) => void) =>
    connectNodeAdapter({
      interceptors: options.interceptors,
      readMaxBytes: options.readMaxBytes ?? DEFAULT_REQUEST_LIMITS.readMaxBytes,
      // Responses go out uncompressed, whatever the client accepts (compressed requests are still read): between
      // services on one network, gzip costs more CPU on both ends than the bytes it saves.
      compressMinBytes: Number.MAX_SAFE_INTEGER,
      routes(router) {
        routes(router);
        router.service(Health, health.service);
        router.service(ServerReflection, reflection.v1);
        router.service(ServerReflectionV1alpha, reflection.v1alpha);
        countRequestValues(router, {
          readMaxBytes: options.readMaxBytes ?? DEFAULT_REQUEST_LIMITS.readMaxBytes,
          maxValues: options.maxRequestValues ?? DEFAULT_REQUEST_LIMITS.maxValues,
        });
      },
    });
  let handler = adapter(options.routes ?? ((router) => answerStarting(router, options.services)));
  let routed = options.routes !== undefined;
  let ready = routed;
  let inFlight = 0;
  let draining = false;
  let drained: (() => void) | undefined;
  const serve = (
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: http.ServerResponse | http2.Http2ServerResponse,
  ) => {
    if (draining) {
      // Shutting down: refuse new calls; gRPC clients read 503 as UNAVAILABLE and may retry elsewhere.
      const response = res as http.ServerResponse;
      response.statusCode = 503;
      response.setHeader('content-type', 'text/plain');
      response.end('shutting down');
      return;
    }
    inFlight++;
    drainUnreadRequestWhenAnswered(req);
    res.once('close', () => {
      inFlight--;
      if (draining && inFlight === 0) drained?.();
    });
    handler(req as http.IncomingMessage, res as http.ServerResponse);
  };

  const requestTimeout = options.requestTimeoutMs ?? 30_000;
  const headersTimeout = Math.min(options.headersTimeoutMs ?? 10_000, requestTimeout);
  const idleTimeout = options.idleTimeoutMs ?? 300_000;
  const maxConnections = options.maxConnections ?? 2048;
  const checkEveryMs = Math.min(1_000, Math.max(50, Math.min(headersTimeout, requestTimeout, idleTimeout) / 4));

  // At most MAX_STREAMS calls at once on one connection: no one client holds unbounded streams (and memory).
  const h2 = http2.createServer({ settings: { maxConcurrentStreams: MAX_STREAMS } }, serve);
  const h1 = http.createServer(
    {
      headersTimeout,
      requestTimeout,
      // An HTTP/1.1 connection carries one call at a time, so clients open several and keep them alive: Node's
      // 5 s keep-alive unless the idle bound is shorter, so that idle browsers do not fill the connection limit.
      keepAliveTimeout: Math.min(idleTimeout, 5_000),
      connectionsCheckingInterval: checkEveryMs,
    },
    serve,
  );
  // h1 never listens itself (the TCP server hands it sockets), and Node only tracks an HTTP server's
  // connections, which enforces its timeouts and lets closeIdleConnections work, once it is listening.
  h1.emit('listening');

  // Node's HTTP/1.1 server bounds its own connections' headers, requests and keep-alive; checkConnections
  // bounds the rest. The maps of times are in order of time (their insertion order), so a check stops at the
  // first entry still in time.
  // Connections whose first bytes have not yet said which protocol they speak, by time of arrival.
  const sniffing = new Map<net.Socket, number>();
  const sessions = new Map<http2.ServerHttp2Session, Http2Connection>();
  // HTTP/2 streams by the time their headers arrived, until they close; a call whose request is a stream (client
  // streaming, bidi) is not in it.
  const requests = new Map<http2.ServerHttp2Stream, number>();
  const streamedRequests = new Set(
    // Reflection's stream is not among them: a client asks and is answered in moments.
    options.services.flatMap((service) =>
      service.methods
        .filter((method) => method.methodKind === 'client_streaming' || method.methodKind === 'bidi_streaming')
        .map((method) => `/${service.typeName}/${method.name}`),
    ),
  );
  let arriving: number | undefined;
  h2.on('session', (session) => {
    const connection: Http2Connection = {
      session,
      acceptedAt: arriving ?? performance.now(),
      greeted: false,
      streams: 0,
      idleSince: 0,
    };
    sessions.set(session, connection);
    session.once('close', () => sessions.delete(session));
    session.on('stream', (stream, headers) => {
      connection.greeted = true;
      connection.streams++;
      const path = headers[':path'];
      if (typeof path !== 'string' || !streamedRequests.has(path)) requests.set(stream, performance.now());
      stream.once('close', () => {
        requests.delete(stream);
        if (--connection.streams === 0) connection.idleSince = performance.now();
      });
    });
  });
  const checkConnections = () => {
    const now = performance.now();
    for (const [socket, acceptedAt] of sniffing) {
      if (now - acceptedAt < headersTimeout) break;
      sniffing.delete(socket);
      socket.destroy();
    }
    for (const [stream, startedAt] of requests) {
      if (now - startedAt < requestTimeout) break;
      requests.delete(stream);
      if (!stream.destroyed && !stream.state.remoteClose) stream.close(http2.constants.NGHTTP2_CANCEL);
    }
    for (const connection of sessions.values()) {
      if (!connection.greeted) {
        if (now - connection.acceptedAt >= headersTimeout) connection.session.destroy();
      } else if (connection.streams === 0 && now - connection.idleSince >= idleTimeout && !connection.session.closed) {
        // GOAWAY: the client opens a new connection for its next call.
        connection.session.close();
      }
    }
  };
  const checks = setInterval(checkConnections, checkEveryMs);
  checks.unref();

  // Refusals past the connection limit are logged at most once a minute, with their count.
  let refusedUnlogged = 0;
  let refusalLoggedAt = Number.NEGATIVE_INFINITY;
  const refused = () => {
    refusedUnlogged++;
    const now = performance.now();
    if (now - refusalLoggedAt < 60_000) return;
    options.logger.warn(
      { maxConnections, refused: refusedUnlogged },
      'connection limit reached: new connections are refused',
    );
    refusalLoggedAt = now;
    refusedUnlogged = 0;
  };

  const sockets = new Set<net.Socket>();
  listener.accept(
    (socket) => {
      sockets.add(socket);
      sniffing.set(socket, performance.now());
      socket.once('close', () => {
        sockets.delete(socket);
        sniffing.delete(socket);
      });
      // A client that connects and resets before sending anything (a port scan, a TCP probe) must not crash
      // the process; once handed over, the HTTP servers handle the socket's errors.
      const dropped = () => socket.destroy();
      socket.on('error', dropped);
      let head = Buffer.alloc(0);
      const sniff = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        // "PRI" starts the HTTP/2 preface and no HTTP/1.1 method, but "P" alone could be "POST" or "PUT":
        // decide on three bytes at least.
        if (head.length < 3) return;
        socket.off('data', sniff);
        socket.off('error', dropped);
        const acceptedAt = sniffing.get(socket);
        sniffing.delete(socket);
        // Put the sniffed bytes back. An HTTP/2 session reads the socket's native handle but first takes what
        // is buffered (Node emulates receiving it), so the socket must stay paused for it; the HTTP/1.1
        // parser reads through the stream, so it is resumed.
        socket.pause();
        socket.unshift(head);
        const prefix = head.subarray(0, Math.min(head.length, HTTP2_PREFACE.length));
        if (HTTP2_PREFACE.subarray(0, prefix.length).equals(prefix)) {
          // The session is created (and 'session' emitted) within this call.
          arriving = acceptedAt;
          h2.emit('connection', socket);
          arriving = undefined;
        } else {
          h1.emit('connection', socket);
          socket.resume();
        }
      };
      socket.on('data', sniff);
    },
    { maxConnections, refused },
  );

  const port = listener.port;
  const updateReadiness = () => health.setReady(ready && routed && !draining);
  updateReadiness();
  options.logger.info({ port, host: listener.host }, 'listening');

  let stopping: Promise<void> | undefined;
  return {
    port,
    route(routes) {
      if (routed) throw new Error('the server already has its routes');
      handler = adapter(routes);
      routed = true;
      updateReadiness();
    },
    setReady(value) {
      ready = value;
      updateReadiness();
    },
    shutdown({ graceMs }) {
      stopping ??= (async () => {
        draining = true;
        updateReadiness();
        // Watchers have seen NOT_SERVING; their streams end so that they do not hold the drain.
        health.endWatches();
        clearInterval(checks);
        const closed = listener.close();
        // GOAWAY on every HTTP/2 session: streams already open finish, new ones go elsewhere.
        for (const session of sessions.keys()) session.close();
        // Closes idle HTTP/1.1 connections and stops the timeout checks (h1 itself was never listening).
        h1.close(() => undefined);
        if (inFlight > 0) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, graceMs);
            drained = () => {
              clearTimeout(timer);
              resolve();
            };
          });
        }
        for (const session of sessions.keys()) session.destroy();
        for (const socket of sockets) socket.destroy();
        await closed;
        health.setLive(false);
        options.logger.info({ unfinished: inFlight }, 'server stopped');
      })();
      return stopping;
    },
  };
}

/** Registers every method of `services` with a handler that answers UNAVAILABLE: the service is starting. */
function answerStarting(router: ConnectRouter, services: readonly DescService[]): void {
  const starting = () => new ConnectError('starting', Code.Unavailable);
  for (const service of services) {
    for (const method of service.methods) {
      const streamsOut = method.methodKind === 'server_streaming' || method.methodKind === 'bidi_streaming';
      router.rpc(
        method,
        (streamsOut
          ? // biome-ignore lint/correctness/useYield: the stream fails before its first message.
            async function* () {
              throw starting();
            }
          : async () => {
              throw starting();
            }) as MethodImpl<typeof method>,
      );
    }
  }
}
