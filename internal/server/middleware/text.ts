import type { DescMessage, Message } from "@bufbuild/protobuf";
import { reflect, type ReflectMessage } from "@bufbuild/protobuf/reflect";
import { ScalarType } from "@bufbuild/protobuf";

/**
 * The path of the first string field holding a NUL character, which
 * PostgreSQL cannot store in text and which no field of ours means to carry;
 * undefined when there is none.
 */
export function nulField(desc: DescMessage, message: Message): string | undefined {
  return walk(reflect(desc, message), "");
}

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
