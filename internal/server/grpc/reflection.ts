import {
  create,
  createRegistry,
  toBinary,
  type DescFile,
  type MessageInitShape,
  type Registry,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import {
  ServerReflection,
  ServerReflectionResponseSchema,
  type ServerReflectionRequest,
} from "../../../third_party/grpc/reflection/v1/reflection_pb.js";
import type { PlainMethod } from "./plain.js";

const NOT_FOUND = 5;

/**
 * gRPC server reflection (v1, and v1alpha on the same messages) answered from
 * the generated protobuf-es descriptors: every file is sent with all its
 * imports, custom options included, so a client can resolve every type from
 * reflection alone. Its methods by path.
 */
export function reflectionMethods(
  files: DescFile[],
  serviceNames: string[],
): Map<string, PlainMethod> {
  const index = indexFiles(files);
  // v1alpha is served as an alias, not listed: no descriptor here describes it.
  const names = [...serviceNames, ServerReflection.typeName];
  const { serverReflectionInfo: info } = ServerReflection.method;
  const method: PlainMethod = {
    input: info.input,
    output: info.output,
    open: (responses) => ({
      message: (request) => {
        const q = request as ServerReflectionRequest;
        responses.send(
          create(ServerReflectionResponseSchema, {
            validHost: q.host,
            originalRequest: q,
            messageResponse: answer(index, names, q),
          }),
        );
      },
      end: () => responses.end(),
      close: () => undefined,
    }),
  };
  return new Map(
    [ServerReflection.typeName, "grpc.reflection.v1alpha.ServerReflection"].map((service) => [
      `/${service}/${info.name}`,
      method,
    ]),
  );
}

interface Index {
  files: Map<string, DescFile>;
  registry: Registry;
}

function indexFiles(roots: DescFile[]): Index {
  const files = new Map<string, DescFile>();
  const visit = (f: DescFile) => {
    if (files.has(f.proto.name)) return;
    files.set(f.proto.name, f);
    f.dependencies.forEach(visit);
  };
  roots.forEach(visit);
  return { files, registry: createRegistry(...files.values()) };
}

type Answer = MessageInitShape<typeof ServerReflectionResponseSchema>["messageResponse"];

function answer(index: Index, serviceNames: string[], request: ServerReflectionRequest): Answer {
  const { registry } = index;
  const q = request.messageRequest;
  switch (q.case) {
    case "listServices":
      return {
        case: "listServicesResponse",
        value: { service: serviceNames.map((name) => ({ name })) },
      };
    case "fileByFilename":
      return files(index.files.get(q.value), `file ${q.value}`);
    case "fileContainingSymbol":
      return files(fileOfSymbol(registry, q.value), `symbol ${q.value}`);
    case "fileContainingExtension": {
      const ext = extensionsOf(registry, q.value.containingType).find(
        (e) => e.number === q.value.extensionNumber,
      );
      return files(ext?.file, `extension ${q.value.containingType}:${q.value.extensionNumber}`);
    }
    case "allExtensionNumbersOfType": {
      if (!registry.getMessage(q.value)) return notFound(`type ${q.value}`);
      const numbers = extensionsOf(registry, q.value).map((e) => e.number);
      return {
        case: "allExtensionNumbersResponse",
        value: { baseTypeName: q.value, extensionNumber: numbers },
      };
    }
    default:
      return { case: "errorResponse", value: { errorCode: 3, errorMessage: "empty request" } };
  }
}

function fileOfSymbol(registry: Registry, symbol: string): DescFile | undefined {
  const desc = registry.get(symbol);
  if (desc) return desc.file;
  // Methods are not registry entries: "pkg.Service.Method" -> its service's file.
  const parent = registry.getService(symbol.slice(0, symbol.lastIndexOf(".")));
  const method = symbol.slice(symbol.lastIndexOf(".") + 1);
  return parent?.methods.some((m) => m.name === method) ? parent.file : undefined;
}

function extensionsOf(registry: Registry, typeName: string) {
  const found = [];
  for (const desc of registry) {
    if (desc.kind === "extension" && desc.extendee.typeName === typeName) found.push(desc);
  }
  return found;
}

function files(file: DescFile | undefined, what: string): Answer {
  if (!file) return notFound(what);
  // Imports before the files that import them, so even a client that builds
  // descriptors one by one in the order received can resolve every type.
  const ordered: DescFile[] = [];
  const visit = (f: DescFile) => {
    if (ordered.includes(f)) return;
    f.dependencies.forEach(visit);
    ordered.push(f);
  };
  visit(file);
  return {
    case: "fileDescriptorResponse",
    value: {
      fileDescriptorProto: ordered.map(serialized),
    },
  };
}

// Each file's bytes, made once: a client asking again and again costs a look-up.
const serializedFiles = new WeakMap<DescFile, Uint8Array>();
function serialized(f: DescFile): Uint8Array {
  let bytes = serializedFiles.get(f);
  if (!bytes) {
    bytes = toBinary(FileDescriptorProtoSchema, f.proto);
    serializedFiles.set(f, bytes);
  }
  return bytes;
}

function notFound(what: string): Answer {
  return {
    case: "errorResponse",
    value: { errorCode: NOT_FOUND, errorMessage: `${what} not found` },
  };
}
