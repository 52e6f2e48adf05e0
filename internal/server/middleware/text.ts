import {
  ScalarType,
  type DescField,
  type DescMessage,
  type Message,
  type DescOneof,
} from "@bufbuild/protobuf";
import { reflect, type ReflectMessage } from "@bufbuild/protobuf/reflect";
import { Edition, isWrapperDesc } from "@bufbuild/protobuf/wkt";

/**
 * The path of the first string field holding a NUL character, which
 * PostgreSQL cannot store in text and which no field of ours means to carry;
 * undefined when there is none.
 */
export function nulField(desc: DescMessage, message: Message): string | undefined {
  return scan(desc, message, "");
}

// What a message's fields look like to a check: protobuf-es's plain objects,
// read by their local names (a oneof as { case, value }).
type Plain = Record<string, unknown>;
/** One field's check: the path of a NUL in it, or undefined. */
type Check = (message: Plain, prefix: string) => string | undefined;

// Each message type is looked at once: its checks read only the fields that
// may hold a string (none at all for most requests: an id, an enum). Planned
// on first use, so that a recursive type needs no more than its own entry.
const plans = new WeakMap<DescMessage, Check[]>();

function scan(desc: DescMessage, message: Message, prefix: string): string | undefined {
  let checks = plans.get(desc);
  if (checks === undefined) {
    checks = plan(desc);
    plans.set(desc, checks);
  }
  const plain = message as unknown as Plain;
  for (const check of checks) {
    const found = check(plain, prefix);
    if (found !== undefined) return found;
  }
  return undefined;
}

function plan(desc: DescMessage): Check[] {
  if (!holdsText(desc, new Set())) return [];
  // Outside proto3 a field's default can live on the prototype, and
  // protobuf-es holds wrappers and Struct in shapes of their own: reflection
  // reads those as the messages they are.
  if (desc.file.edition !== Edition.EDITION_PROTO3 || desc.fields.some(special))
    return [(m, prefix) => walk(reflect(desc, m as unknown as Message), prefix)];
  return desc.fields.filter((f) => holdsTextField(f, new Set())).map(check);
}

function special(field: DescField): boolean {
  const type = field.message;
  return type !== undefined && (isWrapperDesc(type) || type.typeName === "google.protobuf.Struct");
}

const hasNul = (value: unknown) => typeof value === "string" && value.includes("\0");

function check(field: DescField): Check {
  const name = field.name;
  const local = field.localName;
  const read = field.oneof ? oneofReader(field.oneof, local) : (m: Plain) => m[local];
  switch (field.fieldKind) {
    case "scalar":
      return (m, prefix) => (hasNul(read(m)) ? prefix + name : undefined);
    case "message": {
      const type = field.message;
      return (m, prefix) => {
        const value = read(m);
        return value === undefined ? undefined : scan(type, value as Message, `${prefix}${name}.`);
      };
    }
    case "list": {
      if (field.listKind === "scalar")
        return (m, prefix) => {
          const items = m[local] as unknown[];
          for (let i = 0; i < items.length; i++)
            if (hasNul(items[i])) return `${prefix}${name}[${i}]`;
          return undefined;
        };
      const type = field.message!;
      return (m, prefix) => {
        const items = m[local] as Message[];
        for (let i = 0; i < items.length; i++) {
          const found = scan(type, items[i]!, `${prefix}${name}[${i}].`);
          if (found !== undefined) return found;
        }
        return undefined;
      };
    }
    case "map": {
      const keys = field.mapKey === ScalarType.STRING;
      const type = field.mapKind === "message" ? field.message : undefined;
      return (m, prefix) => {
        const entries = m[local] as Record<string, unknown>;
        for (const key in entries) {
          const value = entries[key];
          if ((keys && key.includes("\0")) || hasNul(value)) return prefix + name;
          if (type) {
            const found = scan(type, value as Message, `${prefix}${name}[${key}].`);
            if (found !== undefined) return found;
          }
        }
        return undefined;
      };
    }
    case "enum":
      return () => undefined;
  }
}

function oneofReader(oneof: DescOneof, local: string) {
  const group = oneof.localName;
  return (m: Plain) => {
    const chosen = m[group] as { case: string | undefined; value?: unknown };
    return chosen.case === local ? chosen.value : undefined;
  };
}

function holdsText(desc: DescMessage, seen: Set<DescMessage>): boolean {
  if (seen.has(desc)) return false;
  seen.add(desc);
  return desc.fields.some((f) => holdsTextField(f, seen));
}

function holdsTextField(field: DescField, seen: Set<DescMessage>): boolean {
  switch (field.fieldKind) {
    case "scalar":
      return field.scalar === ScalarType.STRING;
    case "enum":
      return false;
    case "message":
      return holdsText(field.message, seen);
    case "list":
      return field.listKind === "scalar"
        ? field.scalar === ScalarType.STRING
        : field.listKind === "message" && holdsText(field.message, seen);
    case "map":
      return (
        field.mapKey === ScalarType.STRING ||
        (field.mapKind === "scalar" && field.scalar === ScalarType.STRING) ||
        (field.mapKind === "message" && holdsText(field.message, seen))
      );
  }
}

// Through reflection: what the plans hand the types above to (and proto2).
function walk(m: ReflectMessage, prefix: string): string | undefined {
  for (const field of m.fields) {
    if (!m.isSet(field)) continue;
    // Built only where needed: most requests hold no NUL at all.
    const path = () => prefix + field.name;
    switch (field.fieldKind) {
      case "scalar":
        if (field.scalar === ScalarType.STRING && (m.get(field) as string).includes("\0"))
          return path();
        break;
      case "message": {
        const found = walk(m.get(field), `${path()}.`);
        if (found) return found;
        break;
      }
      case "list":
        for (const [i, item] of [...m.get(field)].entries()) {
          if (typeof item === "string" && item.includes("\0")) return `${path()}[${i}]`;
          if (field.listKind === "message") {
            const found = walk(item as ReflectMessage, `${path()}[${i}].`);
            if (found) return found;
          }
        }
        break;
      case "map":
        for (const [key, value] of m.get(field)) {
          if (
            (typeof key === "string" && key.includes("\0")) ||
            (typeof value === "string" && value.includes("\0"))
          )
            return path();
          if (field.mapKind === "message") {
            const found = walk(value as ReflectMessage, `${path()}[${String(key)}].`);
            if (found) return found;
          }
        }
        break;
    }
  }
  return undefined;
}
