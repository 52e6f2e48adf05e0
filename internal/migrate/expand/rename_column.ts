import { typeName } from "./fragment.js";
import { derivedName, quoteIdent } from "./ident.js";
import { one, type Kind } from "./kind.js";
import { oneToOne, twoWayPhases } from "./two_way.js";

/**
 * rename-column: the new name added beside the old (its type given: without
 * a database the generator cannot read it, and the contract's down re-adds
 * the old column), each a copy of the other.
 */
export const renameColumn: Kind = {
  name: "rename-column",
  required: ["table", "column", "to", "type"],
  optional: [],
  build(values) {
    const { table, old, to } = oneToOne(values);
    const type = typeName(one(values, "type"), "--type");
    return twoWayPhases({
      table,
      name: derivedName(table.name, to, "sync"),
      old,
      news: [{ column: to, type, from: quoteIdent(old) }],
      back: quoteIdent(to),
      oldType: type,
      summary: [`rename ${quoteIdent(old)} to ${quoteIdent(to)}`],
    });
  },
};
