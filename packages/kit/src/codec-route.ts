// One RPC served with two decodings of its request: JSON as usual, and protobuf binary (gRPC, gRPC-web, Connect)
// with another message type that reads the same bytes. A hot path uses it to leave part of a request undecoded
// (as `bytes`) and decode that part itself. Connect decodes every codec with the method's one input type, so
// the method is registered twice and a handler in front picks by content type.
import type { DescMethod } from '@bufbuild/protobuf';
import type { ConnectRouter, MethodImpl } from '@connectrpc/connect';
import type { UniversalServerRequest } from '@connectrpc/connect/protocol';

const JSON_CONTENT = /^application\/(?:(?:connect|grpc|grpc-web)\+)?json\b/i;

/**
 * Serves `json.method` with `json.impl` for JSON requests and `binary.impl` for binary ones, which arrive
 * decoded as `binary.method`'s input (a message the same bytes decode to: same field numbers, some fields read
 * as `bytes`). Both methods must have the same path; any handler registered before for it is replaced.
 */
export function routeByCodec<J extends DescMethod, B extends DescMethod>(
  router: ConnectRouter,
  json: { method: J; impl: MethodImpl<J> },
  binary: { method: B; impl: MethodImpl<B> },
): void {
  router.rpc(json.method, json.impl);
  const jsonHandler = router.handlers.pop();
  router.rpc(binary.method, binary.impl);
  const binaryHandler = router.handlers.pop();
  if (!jsonHandler || !binaryHandler || jsonHandler.requestPath !== binaryHandler.requestPath) {
    throw new Error(`routeByCodec: ${json.method.name} and ${binary.method.name} are not served at the same path`);
  }
  const path = jsonHandler.requestPath;
  for (let i = router.handlers.length - 1; i >= 0; i--) {
    if (router.handlers[i]?.requestPath === path) router.handlers.splice(i, 1);
  }
  router.handlers.push(
    Object.assign(
      (req: UniversalServerRequest) =>
        JSON_CONTENT.test(req.header.get('content-type') ?? '') ? jsonHandler(req) : binaryHandler(req),
      jsonHandler,
    ),
  );
}
