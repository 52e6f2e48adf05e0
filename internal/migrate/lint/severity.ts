import { defaults } from "../../conf/defaults.js";
import type { DatabaseCatalog } from "./catalog.js";
import type { Finding } from "./finding.js";
import { RULES, type Rule } from "./rules.js";

/** Where a sized rule's finding turns from warning to error: a table at or above either bound. */
export interface Thresholds {
  errorRows: number;
  errorBytes: number;
}

const { lint_error_rows, lint_error_bytes } = defaults.data.database.migration;

/** The config's defaults, for `migrate lint` without a config. */
export const DEFAULT_THRESHOLDS: Thresholds = {
  errorRows: lint_error_rows,
  errorBytes: lint_error_bytes,
};

/** With a database: each finding of a rule whose cost grows with the table, judged by the table's size. */
export function bySize(
  findings: Finding[],
  catalog: DatabaseCatalog,
  thresholds: Thresholds = DEFAULT_THRESHOLDS,
): Finding[] {
  return findings.map((f) => sized(f, catalog, thresholds));
}

// A table the database does not have yet is created by an earlier pending
// file: empty when this one runs.
function sized(f: Finding, catalog: DatabaseCatalog, t: Thresholds): Finding {
  if (!f.table) return f;
  const size = catalog.size(f.table) ?? { rows: 0, bytes: 0 };
  const rule = RULES[f.rule as keyof typeof RULES] as Rule | undefined;
  // Warnings stay warnings (a function body's DDL, the style rules).
  if (!rule?.sized || f.severity === "warning") return { ...f, size };
  const big = size.rows >= t.errorRows || size.bytes >= t.errorBytes;
  return { ...f, size, severity: big ? "error" : "warning" };
}
