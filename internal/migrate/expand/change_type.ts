import { expression, typeName } from "./fragment.js";
import { derivedName, quoteIdent } from "./ident.js";
import { maybe, one, type Kind } from "./kind.js";
import { oneToOne, twoWayPhases } from "./two_way.js";

/**
 * change-type: a new column of the new type beside the old. --using converts
 * old to new (default a cast, OLD::TYPE), --back new to old (default
 * NEW::OLD_TYPE). --old-type is required: the contract's down re-adds the old
 * column, and without a database its type is not known.
 */
export const changeType: Kind = {
  name: "change-type",
  required: ["table", "column", "to", "type", "old-type"],
  optional: ["using", "back"],
  build(values) {
    const { table, old, to } = oneToOne(values);
    const type = typeName(one(values, "type"), "--type");
    const oldType = typeName(one(values, "old-type"), "--old-type");
    const using = maybe(values, "using");
    const back = maybe(values, "back");
    return twoWayPhases({
      table,
      name: derivedName(table.name, to, "sync"),
      old,
      news: [
        {
          column: to,
          type,
          from: using === undefined ? `${quoteIdent(old)}::${type}` : expression(using, "--using"),
        },
      ],
      back: back === undefined ? `${quoteIdent(to)}::${oldType}` : expression(back, "--back"),
      oldType,
      summary: [`${quoteIdent(old)} (${oldType}) becomes ${quoteIdent(to)} (${type})`],
    });
  },
};
