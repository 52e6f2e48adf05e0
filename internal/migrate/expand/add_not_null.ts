import { expression, typeName } from "./fragment.js";
import { derivedName, identifier, quoteIdent, quoteTable, tableName } from "./ident.js";
import { one, type Kind } from "./kind.js";
import {
  backfill,
  checkTriggerTable,
  createFunction,
  createTrigger,
  dollarTag,
  dropTrigger,
  rowSource,
} from "./trigger.js";

/**
 * add-not-null: the column added nullable, filled from --fill (in terms of
 * the row) by a trigger for the previous release's writes, which do not
 * know it, and by the backfill for the rows before; a CHECK (C IS NOT NULL)
 * NOT VALID holds new writes to it at once. The contract validates the
 * check (a scan that blocks no writes), sets NOT NULL (PostgreSQL 12+ skips
 * its scan with the validated check), then drops the check and the trigger.
 */
export const addNotNull: Kind = {
  name: "add-not-null",
  required: ["table", "column", "type", "fill"],
  optional: [],
  build(values) {
    const table = tableName(one(values, "table"), "--table");
    checkTriggerTable(table, "--table");
    const column = identifier(one(values, "column"), "--column");
    const type = typeName(one(values, "type"), "--type");
    const fill = expression(one(values, "fill"), "--fill");
    const t = { table, name: derivedName(table.name, column, "fill") };
    const check = quoteIdent(derivedName(table.name, column, "not_null"));
    const tq = quoteTable(table);
    const col = quoteIdent(column);
    const fn = createFunction(
      t,
      [
        "BEGIN",
        `  IF NEW.${col} IS NULL THEN`,
        `    NEW.${col} := (SELECT (${fill}) FROM ${rowSource(table)});`,
        "  END IF;",
        "  RETURN NEW;",
        "END",
      ].join("\n"),
      dollarTag("fill", [fill]),
    );
    // Every update, not only those naming the column: the previous release's
    // update of a row not yet backfilled must not break the check.
    const trigger = createTrigger(t);
    const addCheck = `ALTER TABLE ${tq} ADD CONSTRAINT ${check} CHECK (${col} IS NOT NULL) NOT VALID;`;
    return {
      summary: [`add ${col} ${type} NOT NULL, filled from the row where a write leaves it NULL`],
      expandUp: [
        `ALTER TABLE ${tq} ADD COLUMN ${col} ${type};`,
        fn,
        trigger,
        addCheck,
        backfill(table, [`${col} = (${fill})`], `${col} IS NULL`),
      ],
      expandDown: [
        ...dropTrigger(t, true),
        `ALTER TABLE ${tq} DROP CONSTRAINT IF EXISTS ${check};`,
        `ALTER TABLE ${tq} DROP COLUMN IF EXISTS ${col};`,
      ],
      contractUp: [
        `ALTER TABLE ${tq} VALIDATE CONSTRAINT ${check};`,
        `ALTER TABLE ${tq} ALTER COLUMN ${col} SET NOT NULL;`,
        `ALTER TABLE ${tq} DROP CONSTRAINT ${check};`,
        ...dropTrigger(t, false),
      ],
      contractDown: [`ALTER TABLE ${tq} ALTER COLUMN ${col} DROP NOT NULL;`, addCheck, fn, trigger],
    };
  },
};
