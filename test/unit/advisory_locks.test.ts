import { readdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { ADVISORY_LOCKS, MIRRORED_IN } from "../../internal/data/advisory_locks.js";
import { PG_MIGRATE_LOCK_ID } from "../../internal/migrate/seams/node_pg_migrate.js";

// A lock id a migration's trigger takes is written there as a literal; the
// table says which migrations, and both must agree.

const dir = resolve(import.meta.dirname, "../../migrations");

/** Lock ids written as literals in each migration, by its name without direction and extension. */
function literals(): Map<string, Set<number>> {
  const found = new Map<string, Set<number>>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".sql"))) {
    const sql = readFileSync(resolve(dir, file), "utf8");
    const name = file.replace(/\.(up|down)\.sql$/, "");
    for (const m of sql.matchAll(/pg_advisory\w*\(\s*x'([0-9a-f]+)'::int/gi)) {
      if (!found.has(name)) found.set(name, new Set());
      found.get(name)!.add(parseInt(m[1]!, 16));
    }
  }
  return found;
}

describe("advisory locks", () => {
  it("When a migration takes a lock by its literal id, Then the table names that migration beside the lock, and no other", () => {
    const inMigrations = [...literals()].flatMap(([migration, ids]) =>
      [...ids].map((id) => `${migration} ${id.toString(16)}`),
    );
    const inTable = Object.entries(MIRRORED_IN).flatMap(([lock, migrations]) =>
      migrations.map(
        (m) => `${m} ${ADVISORY_LOCKS[lock as keyof typeof ADVISORY_LOCKS].toString(16)}`,
      ),
    );
    expect(inMigrations.sort()).toEqual(inTable.sort());
  });

  it("Each lock has an id of its own, none the migration tool's", () => {
    const ids = [...Object.values(ADVISORY_LOCKS), PG_MIGRATE_LOCK_ID];
    expect(new Set(ids).size).toBe(ids.length);
  });
});
