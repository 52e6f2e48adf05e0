import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readMigrations } from "./source.js";

/** Writes an empty pair `YYYYMMDDHHMMSS_name.{up,down}.sql` (UTC) with header comments. */
export async function createMigration(
  dir: string,
  name: string,
  now = new Date(),
): Promise<{ up: string; down: string }> {
  if (!/^[a-z][a-z0-9_]{0,99}$/.test(name)) {
    throw new Error(
      `migration name "${name}": use lowercase letters, digits and underscores, starting with a letter`,
    );
  }
  const stamp = now.toISOString().replace(/[-:T]/g, "").slice(0, 14);
  const base = `${stamp}_${name}`;
  const taken = readMigrations(dir).migrations.find((m) => m.version === BigInt(stamp));
  if (taken)
    throw new Error(`version ${stamp} is already used by ${taken.upPath}; wait a second and retry`);
  const up = join(dir, `${base}.up.sql`);
  const down = join(dir, `${base}.down.sql`);
  for (const path of [up, down]) if (existsSync(path)) throw new Error(`${path} already exists`);
  const header = (direction: string) =>
    `-- ${base} (${direction})\n-- Created ${now.toISOString()}.\n-- Describe the change and why it is needed.\n\n`;
  writeFileSync(up, header("up"), { flag: "wx" });
  writeFileSync(
    down,
    `${header("down")}-- Undo exactly what the up file does, in reverse order, with IF EXISTS.\n`,
    {
      flag: "wx",
    },
  );
  return { up, down };
}
