// One RPC served with two decodings of its request: JSON as usual, and protobuf binary (gRPC, gRPC-web, Connect)
// with another message type that reads the same bytes. A hot path uses it to leave part of a request undecoded
// (as `bytes`) and decode that part itself. Connect decodes every codec with the method's one input type, so
// the method is registered twice and a handler in front picks by content type.
import { type DescMessage, type DescMethod, ScalarType } from '@bufbuild/protobuf';
import type { ConnectRouter, MethodImpl } from '@connectrpc/connect';
import type { UniversalServerRequest } from '@connectrpc/connect/protocol';

const JSON_CONTENT = /^application\/(?:(?:connect|grpc|grpc-web)\+)?json\b/i;

// For each request type served through routeByCodec, the numbers of the fields its binary twin reads as bytes.
// The handler decodes and validates those itself, item by item; the request guard leaves them to it in JSON too,
// so that both decodings of a request answer alike.
const decodedByHandler = new WeakMap<DescMessage, ReadonlySet<number>>();

/**
 * The numbers of the fields of `input` (a request type served through routeByCodec) that its handler decodes and
 * validates itself; undefined for any other type.
 */
export function fieldsDecodedByHandler(input: DescMessage): ReadonlySet<number> | undefined {
  return decodedByHandler.get(input);
}

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
  const left = binary.method.input.fields.filter(
    (field) => field.fieldKind === 'list' && field.listKind === 'scalar' && field.scalar === ScalarType.BYTES,
  );
  decodedByHandler.set(json.method.input, new Set(left.map((field) => field.number)));
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
