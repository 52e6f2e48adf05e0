import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { loadSqlParser, splitStatements, type Statement } from "./sql.js";

/** First line of a migration that must run outside a transaction (one statement only). */
export const NO_TRANSACTION_MARKER = "-- migrate:no-transaction";

/** One versioned pair of SQL files. */
export interface MigrationFile {
  /** Base name without .up.sql, as recorded in pgmigrations.name: `000001_init_schema`. */
  name: string;
  /** Numeric prefix, for ordering. */
  version: bigint;
  upPath: string;
  downPath: string | undefined;
  up: string;
  down: string | undefined;
  /** SHA-256 (hex) of the up file with line endings normalised. */
  checksum: string;
  noTransaction: boolean;
}

/** A problem with the files themselves, naming the file. */
export class MigrationSourceError extends Error {
  override name = "MigrationSourceError";
}

const FILE = /^(\d+)_([a-z0-9_]+)\.(up|down)\.sql$/;

/**
 * Reads every migration pair in `dir`, in the order they apply. Refuses what
 * node-pg-migrate would silently mis-pair or skip: other .sql names (e.g.
 * `.up.SQL`), a down file without its up, two files with one version.
 */
export async function readMigrations(dir: string): Promise<MigrationFile[]> {
  await loadSqlParser();
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (err) {
    throw new MigrationSourceError(
      `migrations directory ${dir}: ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }
  const pairs = new Map<string, { version: bigint; up?: string; down?: string }>();
  for (const entry of entries.sort()) {
    if (!/\.sql$/i.test(entry)) continue;
    const m = FILE.exec(entry);
    if (!m) {
      throw new MigrationSourceError(
        `${join(dir, entry)}: not a migration file name; expected NNNN_name.up.sql or NNNN_name.down.sql (lowercase)`,
      );
    }
    const [, prefix, label, direction] = m as unknown as [string, string, string, "up" | "down"];
    const name = `${prefix}_${label}`;
    const pair = pairs.get(name) ?? { version: BigInt(prefix) };
    pair[direction] = join(dir, entry);
    pairs.set(name, pair);
  }
  const files = [...pairs].map(([name, pair]) => toFile(name, pair));
  files.sort((a, b) =>
    a.version < b.version ? -1 : a.version > b.version ? 1 : a.name.localeCompare(b.name),
  );
  for (let i = 1; i < files.length; i++) {
    if (files[i]!.version === files[i - 1]!.version) {
      throw new MigrationSourceError(
        `${files[i]!.upPath}: version ${files[i]!.version} is also used by ${files[i - 1]!.upPath}`,
      );
    }
  }
  return files;
}

function toFile(
  name: string,
  pair: { version: bigint; up?: string; down?: string },
): MigrationFile {
  if (!pair.up) throw new MigrationSourceError(`${pair.down}: has no matching ${name}.up.sql`);
  const up = normalise(readFileSync(pair.up, "utf8"));
  const down = pair.down ? normalise(readFileSync(pair.down, "utf8")) : undefined;
  const noTransaction = up.split("\n", 1)[0]!.trim() === NO_TRANSACTION_MARKER;
  if (noTransaction) {
    const count = splitStatements(up, pair.up).length;
    if (count !== 1) {
      throw new MigrationSourceError(
        `${pair.up}: a ${NO_TRANSACTION_MARKER} migration must hold exactly one statement, found ${count}`,
      );
    }
  }
  return {
    name,
    version: pair.version,
    upPath: pair.up,
    downPath: pair.down,
    up,
    down,
    checksum: createHash("sha256").update(up).digest("hex"),
    noTransaction,
  };
}

function normalise(text: string): string {
  return text.replace(/\r\n?/g, "\n");
}

export type { Statement };
