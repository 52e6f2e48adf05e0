import { addNotNull } from "./add_not_null.js";
import { changeType } from "./change_type.js";
import type { Kind } from "./kind.js";
import { renameColumn } from "./rename_column.js";
import { splitColumn } from "./split_column.js";

/** Every kind `create --expand` makes, by name. */
export const KINDS: ReadonlyMap<string, Kind> = new Map(
  [renameColumn, changeType, addNotNull, splitColumn].map((k) => [k.name, k]),
);
