import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { testRootKey } from "../helpers/app.js";
import { catalogSnapshot, query } from "../helpers/catalog.js";
import { migrationFixtures } from "../helpers/migrations.js";

// A backup before `up`, events as the run happens, and the restore drill of
// docs/migrations.md: backup, migrate, restore, verify.

const { freshDb, folder, migrate } = migrationFixtures();
const scratch = mkdtempSync(join(tmpdir(), "kbts-backup-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const files = {
  "1_t.up.sql": "CREATE TABLE t (a int PRIMARY KEY, b text);\n",
  "1_t.down.sql": "DROP TABLE t;\n",
  "2_c.up.sql": "ALTER TABLE t ADD COLUMN c int;\n",
  "2_c.down.sql": "ALTER TABLE t DROP COLUMN c;\n",
  "3_drop_b.up.sql":
    '-- migrate:allow ban-drop-column "b is read by nothing"\nALTER TABLE t DROP COLUMN b;\n',
  "3_drop_b.down.sql": "ALTER TABLE t ADD COLUMN b text;\n",
};

interface Event {
  event: string;
  time: string;
  [k: string]: unknown;
}
async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    const stat = spawnSync("ps", ["-o", "stat=", "-p", String(pid)], { encoding: "utf8" }).stdout;
    if (stat.trim() === "" || stat.startsWith("Z")) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

const lines = (text: string) =>
  text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Event);

describe("backup before up", () => {
  it("a failing backup command applies nothing: every migration stays pending", async () => {
    const db = await freshDb();
    const dir = folder(files, { project: false });
    const run = await migrate(db, ["up", "--dir", dir, "--backup-command", "echo half; exit 3"]);
    expect(run.code, run.output).toBe(1);
    expect(run.output).toContain("the backup command exited with 3; nothing was applied");
    expect(await catalogSnapshot(db.url, { includeMigrationTable: true })).toEqual([]);
  });

  it("a backup command that does not finish is stopped with its children at --backup-timeout; nothing applied", async () => {
    const db = await freshDb();
    const dir = folder(files, { project: false });
    const pidFile = join(scratch, "sleeper.pid");
    const run = await migrate(db, [
      "up",
      "--dir",
      dir,
      "--backup-timeout",
      "1s",
      "--backup-command",
      `sleep 60 & echo $! > ${pidFile}; wait`,
    ]);
    expect(run.code, run.output).toBe(1);
    expect(run.output).toContain(
      "the backup command did not finish within 1 s; nothing was applied",
    );
    // Its output closes when the last of the group exits: by now the sleeper
    // is dead, perhaps not yet reaped (bounded polling, not a timing test).
    const pid = Number(readFileSync(pidFile, "utf8"));
    expect(await gone(pid)).toBe(true);
    expect(await catalogSnapshot(db.url, { includeMigrationTable: true })).toEqual([]);
  });

  it("a backup_timeout beyond what a timer holds is a configuration error: exit 2, nothing applied", async () => {
    const db = await freshDb();
    const dir = folder(files, { project: false });
    const conf = join(dir, "migrate.yaml");
    writeFileSync(
      conf,
      `data: { database: { migration: { backup_command: "true", backup_timeout: 2592000s } } }\nkms: { root_key: "${testRootKey}" }\n`,
    );
    const run = await migrate(db, ["up", "--dir", dir, "-conf", conf]);
    expect(run.code, run.output).toBe(2);
    expect(run.output).toContain("backup_timeout");
    expect(await catalogSnapshot(db.url, { includeMigrationTable: true })).toEqual([]);
  });

  it("a location's credentials (a URL's user, password, presigned query) are neither reported nor recorded", async () => {
    const db = await freshDb();
    const dir = folder(files, { project: false });
    const run = await migrate(db, [
      "up",
      "--dir",
      dir,
      "--backup-command",
      "echo 'https://backup:hunter2@store.example/b/one.dump?X-Amz-Signature=s3cr3t'",
    ]);
    expect(run.code, run.output).toBe(0);
    expect(run.stdout).toContain("backup   https://store.example/b/one.dump (");
    expect(run.output).not.toMatch(/hunter2|s3cr3t/);
    expect(await query(db.url, "SELECT location FROM migrate_backups")).toEqual([
      { location: "https://store.example/b/one.dump" },
    ]);
  });

  it("a bad --backup-command or --backup-timeout exits 2 before connecting", async () => {
    const db = await freshDb();
    for (const args of [
      ["--backup-command", ""],
      ["--backup-timeout", "0s"],
      ["--backup-timeout", "soon"],
    ]) {
      const run = await migrate(db, ["up", "--dir", folder(files, { project: false }), ...args]);
      expect(run.code, run.output).toBe(2);
      expect(run.output).toContain(`--${args[0]!.slice(2)}`);
    }
  });

  it("the backup's location is reported, recorded with the migrations it preceded and shown by status; events trace the run", async () => {
    const db = await freshDb();
    const dir = folder(files, { project: false });
    const eventsFile = join(scratch, "events.jsonl");
    // The config's command, as a deploy would set it; the URL is in its environment.
    const conf = join(dir, "migrate.yaml");
    writeFileSync(
      conf,
      `data: { database: { migration: { backup_command: 'test -n "$DATABASE_URL" && test -z "$KMS_ROOT_KEY" && echo "snap for $MIGRATE_STEPS" && echo s3://backups/one' } } }\nkms: { root_key: "${testRootKey}" }\n`,
    );
    // The service's secrets stay out of the backup command's environment.
    const run = await migrate(db, ["up", "--dir", dir, "-conf", conf, "--events", eventsFile], {
      env: { KMS_ROOT_KEY: testRootKey },
    });
    expect(run.code, run.output).toBe(0);
    expect(run.stdout).toMatch(/^backup {3}s3:\/\/backups\/one \(\d+ ms\)$/m);
    const [row] = (await query(db.url, "SELECT location, steps, db_user FROM migrate_backups")) as {
      location: string;
      steps: string[];
      db_user: string;
    }[];
    expect(row).toEqual({
      location: "s3://backups/one",
      steps: ["1_t", "2_c", "3_drop_b"],
      db_user: expect.any(String) as string,
    });
    const status = await migrate(db, ["status", "--dir", dir, "--json"]);
    const entries = JSON.parse(status.stdout).migrations as { name: string; backup?: object }[];
    expect(entries.map((e) => [e.name, e.backup])).toEqual(
      ["1_t", "2_c", "3_drop_b"].map((n) => [
        n,
        { location: "s3://backups/one", takenAt: expect.any(String) as string },
      ]),
    );

    const events = lines(readFileSync(eventsFile, "utf8"));
    expect(events.map((e) => e.event)).toEqual([
      "run_started",
      "backup_started",
      "backup_finished",
      ...["1_t", "2_c", "3_drop_b"].flatMap(() => ["migration_started", "migration_finished"]),
      "run_finished",
    ]);
    expect(events[0]).toMatchObject({
      command: "up",
      steps: ["1_t (up)", "2_c (up)", "3_drop_b (up)"],
    });
    expect(events[2]).toMatchObject({ location: "s3://backups/one" });
    expect(events.at(-1)).toMatchObject({ completed: 3 });
    for (const e of events) expect(Number.isNaN(Date.parse(e.time))).toBe(false);
    const password = new URL(db.url).password;
    if (password) expect(readFileSync(eventsFile, "utf8")).not.toContain(password);
  });

  it("--events -: JSON lines on stdout and the report on stderr; a failure is an event; with --json it exits 2", async () => {
    const db = await freshDb();
    const dir = folder(
      { ...files, "2_c.up.sql": "ALTER TABLE t ADD COLUMN c int;\nSELECT 1/0;\n" },
      { project: false },
    );
    const run = await migrate(db, ["up", "--dir", dir, "--events", "-"]);
    expect(run.code, run.output).toBe(1);
    const events = lines(run.stdout);
    expect(events.map((e) => e.event)).toEqual([
      "run_started",
      "migration_started",
      "migration_finished",
      "migration_started",
      "migration_failed",
      "run_finished",
    ]);
    expect(events[4]).toMatchObject({
      name: "2_c",
      code: "22012",
      at: `${join(dir, "2_c.up.sql")}:2`,
    });
    // The server's message may quote the file's literals: the report has it, an event does not.
    expect(events[4]).not.toHaveProperty("message");
    expect(events[5]).toMatchObject({ completed: 1, failed: "2_c" });
    expect(run.output).toContain("FAILED   2_c (up)");

    const both = await migrate(db, ["up", "--dir", dir, "--events", "-", "--json"]);
    expect(both.code, both.output).toBe(2);
    expect(both.output).toContain("--events - and --json both write to stdout");
    for (const look of [["--dry-run"], ["--rehearse"]]) {
      const refused = await migrate(db, ["up", "--dir", dir, "--events", "-", ...look]);
      expect(refused.code, refused.output).toBe(2);
      expect(refused.output).toMatch(/--events and --(dry-run|rehearse)/);
    }
  });

  it("a refused run is one event saying why", async () => {
    const db = await freshDb();
    const dir = folder(
      { ...files, "3_drop_b.up.sql": "ALTER TABLE t DROP COLUMN b;\n" },
      { project: false },
    );
    const eventsFile = join(scratch, "refused.jsonl");
    const run = await migrate(db, ["up", "--dir", dir, "--events", eventsFile]);
    expect(run.code, run.output).toBe(1);
    const events = lines(readFileSync(eventsFile, "utf8"));
    expect(events.map((e) => e.event)).toEqual(["run_started", "run_finished"]);
    expect(events[1]!.error).toContain("[ban-drop-column]");
  });
});

// pg_dump refuses a server newer than itself: the embedded PostgreSQL may be.
async function pgDumpCanDump(url: string): Promise<boolean> {
  const major = Number(
    /(\d+)/.exec(spawnSync("pg_dump", ["--version"], { encoding: "utf8" }).stdout ?? "")?.[1] ?? 0,
  );
  const [{ v }] = (await query(url, "SELECT current_setting('server_version_num') AS v")) as [
    { v: string },
  ];
  return major >= Math.floor(Number(v) / 10000);
}

describe("the restore drill (docs/migrations.md)", () => {
  it("backup with pg_dump, migrate, restore with pg_restore: the restored database is the state before the migration, and verifies", async (ctx) => {
    const db = await freshDb();
    if (!(await pgDumpCanDump(db.url))) {
      // Under CI the drill runs on the machine's PostgreSQL (DATABASE_URL).
      ctx.skip();
      return;
    }
    const dir = folder(files, { project: false });
    expect((await migrate(db, ["up", "1", "--dir", dir])).code).toBe(0);
    await query(db.url, "INSERT INTO t VALUES (1, 'one'), (2, 'two')");
    const dump = join(scratch, "drill.dump");
    const run = await migrate(db, [
      "up",
      "--dir",
      dir,
      "--backup-command",
      `pg_dump --format=custom --no-owner --file=${dump} "$DATABASE_URL" && echo ${dump}`,
    ]);
    expect(run.code, run.output).toBe(0);
    expect(run.stdout).toContain(`backup   ${dump}`);
    expect(existsSync(dump)).toBe(true);

    const restored = await freshDb();
    const restore = spawnSync("pg_restore", ["--no-owner", `--dbname=${restored.url}`, dump], {
      encoding: "utf8",
    });
    expect(restore.status, restore.stderr).toBe(0);
    const status = await migrate(restored, ["status", "--dir", dir, "--json"]);
    const entries = JSON.parse(status.stdout).migrations as { name: string; state: string }[];
    expect(entries.map((e) => [e.name, e.state])).toEqual([
      ["1_t", "applied"],
      ["2_c", "pending"],
      ["3_drop_b", "pending"],
    ]);
    expect(await query(restored.url, "SELECT a, b FROM t ORDER BY a")).toEqual([
      { a: 1, b: "one" },
      { a: 2, b: "two" },
    ]);
    const verify = await migrate(restored, ["verify", "--dir", dir]);
    expect(verify.code, verify.output).toBe(0);
    // And the restored database migrates forward as the original did.
    const again = await migrate(restored, ["up", "--dir", dir]);
    expect(again.code, again.output).toBe(0);
  });
});
