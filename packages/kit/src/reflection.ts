// gRPC server reflection over protobuf-es descriptors, so that grpcurl and `buf curl` can call a service
// without its schema files. connect-es ships none, so the kit implements the protocol: list_services,
// file_by_filename, file_containing_symbol, file_containing_extension and all_extension_numbers_of_type,
// answered from the descriptors embedded in the generated code (`DescService.file.proto` is the file's
// FileDescriptorProto). It is served as grpc.reflection.v1 and, for older clients, as v1alpha: the same
// messages under another package. `buf curl` tries v1 first and falls back to v1alpha; grpcurl since 1.8.8
// does the same, older grpcurl only speaks v1alpha.

import { ServerReflection, ServerReflectionResponseSchema } from '@billing/proto/grpc/reflection/v1/reflection_pb';
import {
  ServerReflectionResponseSchema as ServerReflectionResponseSchemaV1alpha,
  ServerReflection as ServerReflectionV1alpha,
} from '@billing/proto/grpc/reflection/v1alpha/reflection_pb';
import { create, type DescExtension, type DescFile, type DescMessage, type DescService, toBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { Code, type ServiceImpl } from '@connectrpc/connect';

// What a client asks, as both versions spell it (the same fields; only the package differs).
type Question =
  | { case: 'fileByFilename'; value: string }
  | { case: 'fileContainingSymbol'; value: string }
  | { case: 'fileContainingExtension'; value: { containingType: string; extensionNumber: number } }
  | { case: 'allExtensionNumbersOfType'; value: string }
  | { case: 'listServices'; value: string }
  | { case: undefined; value?: undefined };

// What the server answers, as both versions spell it.
type Answer =
  | { case: 'fileDescriptorResponse'; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: 'allExtensionNumbersResponse'; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: 'listServicesResponse'; value: { service: { name: string }[] } }
  | { case: 'errorResponse'; value: { errorCode: number; errorMessage: string } };

/** Everything reflection can answer about a set of services: their files and the symbols in them. */
interface ReflectionIndex {
  services: string[];
  files: Map<string, DescFile>;
  symbols: Map<string, DescFile>;
  // Extensions by the message they extend, then by field number.
  extensions: Map<string, Map<number, DescExtension>>;
}

function indexExtension(index: ReflectionIndex, file: DescFile, extension: DescExtension): void {
  index.symbols.set(extension.typeName, file);
  const byNumber = index.extensions.get(extension.extendee.typeName) ?? new Map<number, DescExtension>();
  byNumber.set(extension.number, extension);
  index.extensions.set(extension.extendee.typeName, byNumber);
}

function indexMessage(index: ReflectionIndex, file: DescFile, message: DescMessage): void {
  index.symbols.set(message.typeName, file);
  // Fields and oneofs are symbols too (grpc-go resolves any full name); some clients ask for them.
  for (const field of message.fields) index.symbols.set(`${message.typeName}.${field.name}`, file);
  for (const oneof of message.oneofs) index.symbols.set(`${message.typeName}.${oneof.name}`, file);
  for (const nested of message.nestedMessages) indexMessage(index, file, nested);
  for (const e of message.nestedEnums) index.symbols.set(e.typeName, file);
  for (const extension of message.nestedExtensions) indexExtension(index, file, extension);
}

function buildIndex(services: readonly DescService[], extraFiles: readonly DescFile[]): ReflectionIndex {
  const index: ReflectionIndex = {
    services: [...new Set(services.map((s) => s.typeName))].sort(),
    files: new Map(),
    symbols: new Map(),
    extensions: new Map(),
  };
  const visit = (file: DescFile) => {
    if (index.files.has(file.proto.name)) return;
    index.files.set(file.proto.name, file);
    for (const message of file.messages) indexMessage(index, file, message);
    for (const e of file.enums) index.symbols.set(e.typeName, file);
    for (const extension of file.extensions) indexExtension(index, file, extension);
    for (const service of file.services) {
      index.symbols.set(service.typeName, file);
      for (const method of service.methods) index.symbols.set(`${service.typeName}.${method.name}`, file);
    }
    for (const dependency of file.dependencies) visit(dependency);
  };
  for (const service of services) visit(service.file);
  for (const file of extraFiles) visit(file);
  return index;
}

/**
 * The file and its transitive imports, the file first, each import once per stream: as grpc-go does, files
 * already sent on this stream are not sent again (the protocol allows it), but the requested one always is.
 */
function filesFor(file: DescFile, sent: Set<string>): Uint8Array[] {
  const out: Uint8Array[] = [];
  const queue: DescFile[] = [file];
  const seen = new Set<string>();
  for (let f = queue.shift(); f !== undefined; f = queue.shift()) {
    if (seen.has(f.proto.name)) continue;
    seen.add(f.proto.name);
    if (f === file || !sent.has(f.proto.name)) {
      sent.add(f.proto.name);
      out.push(toBinary(FileDescriptorProtoSchema, f.proto));
    }
    queue.push(...f.dependencies);
  }
  return out;
}

function notFound(what: string): Answer {
  return { case: 'errorResponse', value: { errorCode: Code.NotFound, errorMessage: `${what} not found` } };
}

function answer(index: ReflectionIndex, question: Question, sent: Set<string>): Answer {
  const files = (file: DescFile | undefined, what: string): Answer =>
    file ? { case: 'fileDescriptorResponse', value: { fileDescriptorProto: filesFor(file, sent) } } : notFound(what);
  switch (question.case) {
    case 'listServices':
      return { case: 'listServicesResponse', value: { service: index.services.map((name) => ({ name })) } };
    case 'fileByFilename':
      return files(index.files.get(question.value), `file "${question.value}"`);
    case 'fileContainingSymbol':
      return files(index.symbols.get(question.value), `symbol "${question.value}"`);
    case 'fileContainingExtension': {
      const { containingType, extensionNumber } = question.value;
      const extension = index.extensions.get(containingType)?.get(extensionNumber);
      return files(extension?.file, `extension ${extensionNumber} of "${containingType}"`);
    }
    case 'allExtensionNumbersOfType': {
      // A known message without extensions has an empty list; an unknown one is NOT_FOUND.
      if (!index.symbols.has(question.value)) return notFound(`type "${question.value}"`);
      const numbers = [...(index.extensions.get(question.value)?.keys() ?? [])].sort((a, b) => a - b);
      return { case: 'allExtensionNumbersResponse', value: { baseTypeName: question.value, extensionNumber: numbers } };
    }
    default:
      return {
        case: 'errorResponse',
        value: { errorCode: Code.InvalidArgument, errorMessage: 'the request names no question' },
      };
  }
}

// The requests of a stream until the client ends it or the server stops: an idle reflection stream
// (buf curl keeps one open for the whole call) must not hold a shutdown up until its deadline.
async function* untilStopped<T>(requests: AsyncIterable<T>, stopped: AbortSignal): AsyncGenerator<T> {
  const iterator = requests[Symbol.asyncIterator]();
  const stop = new Promise<'stopped'>((resolve) => {
    if (stopped.aborted) resolve('stopped');
    else stopped.addEventListener('abort', () => resolve('stopped'), { once: true });
  });
  try {
    for (;;) {
      const next = await Promise.race([iterator.next(), stop]);
      if (next === 'stopped' || next.done === true) return;
      yield next.value;
    }
  } finally {
    // Not awaited: with a read still pending, an async generator's return() waits for that read, that is
    // for a client that may never send again.
    iterator.return?.().catch(() => undefined);
  }
}

/** The two reflection services: grpc.reflection.v1 and grpc.reflection.v1alpha. */
export interface ReflectionServices {
  /** grpc.reflection.v1.ServerReflection. */
  v1: ServiceImpl<typeof ServerReflection>;
  /** grpc.reflection.v1alpha.ServerReflection (same protocol, older package). */
  v1alpha: ServiceImpl<typeof ServerReflectionV1alpha>;
}

/** Options of reflection beyond the services it lists. */
export interface ReflectionOptions {
  /** Open streams end when this aborts (the server is shutting down). */
  stopped?: AbortSignal;
  /**
   * Files to describe although no listed service imports them: messages a client meets only inside
   * `Any` values, such as the error details (google/rpc/error_details.proto) every error carries.
   */
  extraFiles?: readonly DescFile[];
}

/**
 * Reflection over `services`, their files and everything those import; the reflection services list
 * themselves too, as grpc-go's do.
 */
export function reflectionServices(
  services: readonly DescService[],
  options: ReflectionOptions = {},
): ReflectionServices {
  const index = buildIndex([...services, ServerReflection, ServerReflectionV1alpha], options.extraFiles ?? []);
  const stopped = options.stopped ?? new AbortController().signal;
  return {
    v1: {
      async *serverReflectionInfo(requests) {
        const sent = new Set<string>();
        for await (const request of untilStopped(requests, stopped)) {
          yield create(ServerReflectionResponseSchema, {
            validHost: request.host,
            originalRequest: request,
            messageResponse: answer(index, request.messageRequest, sent),
          });
        }
      },
    },
    v1alpha: {
      async *serverReflectionInfo(requests) {
        const sent = new Set<string>();
        for await (const request of untilStopped(requests, stopped)) {
          yield create(ServerReflectionResponseSchemaV1alpha, {
            validHost: request.host,
            originalRequest: request,
            messageResponse: answer(index, request.messageRequest, sent),
          });
        }
      },
    },
  };
}
