// gRPC server reflection (grpc.reflection.v1) over protobuf-es descriptors, so that grpcurl and `buf curl`
// can call a service without its schema files. connect-es ships none, so the kit implements it.

import {
  ServerReflection,
  type ServerReflectionRequest,
  ServerReflectionRequestSchema,
  type ServerReflectionResponse,
  ServerReflectionResponseSchema,
} from '@billing/proto/grpc/reflection/v1/reflection_pb';
import {
  ServerReflectionResponseSchema as ServerReflectionResponseSchemaV1alpha,
  ServerReflection as ServerReflectionV1alpha,
} from '@billing/proto/grpc/reflection/v1alpha/reflection_pb';
import { create, type DescFile, type DescMessage, type DescService, toBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import type { ServiceImpl } from '@connectrpc/connect';
import { quote } from './errors.ts';

const NOT_FOUND = 5;
const UNIMPLEMENTED = 12;

/** Everything reflection can answer about a set of services: their files and the symbols in them. */
interface ReflectionIndex {
  services: string[];
  files: Map<string, DescFile>;
  symbols: Map<string, DescFile>;
}

function indexMessage(symbols: Map<string, DescFile>, file: DescFile, message: DescMessage): void {
  symbols.set(message.typeName, file);
  for (const nested of message.nestedMessages) indexMessage(symbols, file, nested);
  for (const e of message.nestedEnums) symbols.set(e.typeName, file);
}

function buildIndex(services: readonly DescService[]): ReflectionIndex {
  const files = new Map<string, DescFile>();
  const symbols = new Map<string, DescFile>();
  const visit = (file: DescFile) => {
    if (files.has(file.proto.name)) return;
    files.set(file.proto.name, file);
    for (const message of file.messages) indexMessage(symbols, file, message);
    for (const e of file.enums) symbols.set(e.typeName, file);
    for (const service of file.services) {
      symbols.set(service.typeName, file);
      for (const method of service.methods) symbols.set(`${service.typeName}.${method.name}`, file);
    }
    for (const dependency of file.dependencies) visit(dependency);
  };
  for (const service of services) visit(service.file);
  return { services: services.map((s) => s.typeName), files, symbols };
}

// A file and everything it imports, dependencies first, each once.
function withDependencies(file: DescFile): Uint8Array[] {
  const out: Uint8Array[] = [];
  const seen = new Set<string>();
  const visit = (f: DescFile) => {
    if (seen.has(f.proto.name)) return;
    seen.add(f.proto.name);
    for (const d of f.dependencies) visit(d);
    out.push(toBinary(FileDescriptorProtoSchema, f.proto));
  };
  visit(file);
  return out;
}

function answer(index: ReflectionIndex, request: ServerReflectionRequest): ServerReflectionResponse {
  const base = { validHost: request.host, originalRequest: request };
  const files = (file: DescFile | undefined, what: string) =>
    file
      ? create(ServerReflectionResponseSchema, {
          ...base,
          messageResponse: { case: 'fileDescriptorResponse', value: { fileDescriptorProto: withDependencies(file) } },
        })
      : create(ServerReflectionResponseSchema, {
          ...base,
          messageResponse: {
            case: 'errorResponse',
            value: { errorCode: NOT_FOUND, errorMessage: `${what} not found` },
          },
        });
  const req = request.messageRequest;
  switch (req.case) {
    case 'listServices':
      return create(ServerReflectionResponseSchema, {
        ...base,
        messageResponse: { case: 'listServicesResponse', value: { service: index.services.map((name) => ({ name })) } },
      });
    case 'fileByFilename':
      return files(index.files.get(req.value), `file ${quote(req.value)}`);
    case 'fileContainingSymbol':
      return files(index.symbols.get(req.value), `symbol ${quote(req.value)}`);
    default:
      return create(ServerReflectionResponseSchema, {
        ...base,
        messageResponse: {
          case: 'errorResponse',
          value: { errorCode: UNIMPLEMENTED, errorMessage: 'extensions are not supported' },
        },
      });
  }
}

/** The reflection services for `services`: grpc.reflection.v1, and v1alpha for older grpcurl builds. */
export function reflectionServices(services: readonly DescService[]): {
  v1: ServiceImpl<typeof ServerReflection>;
  v1alpha: ServiceImpl<typeof ServerReflectionV1alpha>;
} {
  const index = buildIndex([...services, ServerReflection, ServerReflectionV1alpha]);
  return {
    v1: {
      async *serverReflectionInfo(requests) {
        for await (const request of requests) yield answer(index, request);
      },
    },
    // v1alpha has the same messages under another package: answer in v1, then re-type the same fields.
    v1alpha: {
      async *serverReflectionInfo(requests) {
        for await (const request of requests) {
          const { $typeName: _request, ...fields } = request;
          const {
            $typeName: _response,
            originalRequest: _original,
            ...response
          } = answer(index, create(ServerReflectionRequestSchema, fields as never));
          yield create(ServerReflectionResponseSchemaV1alpha, { ...response, originalRequest: fields } as never);
        }
      },
    },
  };
}
