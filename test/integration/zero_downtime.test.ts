import { execFileSync } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, describe, expect, it } from "vitest";
import { UserService } from "../../api/user/v1/user_pb.js";
import { query } from "../helpers/catalog.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { runMigrate, spawnProcess, writeServerConfig } from "../helpers/process.js";

// Our own schema change shipped the zero-downtime way (docs/zero-downtime.md):
// users.password becomes users.password_hash. The previous release is this
// repository as it was before the change, taken from git; the new one is this
// tree. Both serve one database through the expand; the contract waits for
// the previous release to stop; nothing written meanwhile is lost.

const root = resolve(import.meta.dirname, "../..");
const EXPAND = "migrations/000019_users_password_hash_expand.up.sql";
const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;

const cleanup: (() => unknown)[] = [];
afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn();
});

/**
 * The tree of the commit before the one that added the expand (HEAD while
 * it is not committed). In a clone too shallow to hold that commit, this
 * tree less the change: the two migrations removed and the data layer back
 * on the old column name, which is all the change touched in the server.
 */
function previousRelease(): string {
  const git = (...args: string[]) => execFileSync("git", args, { cwd: root }).toString().trim();
  const added = git("log", "--diff-filter=A", "--format=%H", "--", EXPAND).split("\n").at(-1);
  const base = added ? `${added}^` : "HEAD";
  const dir = mkdtempSync(join(tmpdir(), "previous-release-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  let inHistory = true;
  try {
    git("rev-parse", "--verify", "--quiet", `${base}^{commit}`);
  } catch {
    inHistory = false;
  }
  execFileSync("sh", ["-c", `git archive "$0" | tar -x -C "$1"`, inHistory ? base : "HEAD", dir], {
    cwd: root,
  });
  if (!inHistory) {
    for (const f of readdirSync(join(dir, "migrations")))
      if (/^0000(19|20)_users_password_hash_/.test(f)) rmSync(join(dir, "migrations", f));
    const repo = join(dir, "internal/data/user_repo.ts");
    writeFileSync(repo, readFileSync(repo, "utf8").replaceAll("password_hash", "password"));
  }
  if (existsSync(join(dir, EXPAND)))
    throw new Error(`the previous release holds ${EXPAND} already`);
  // This tree's packages serve it: what the previous release needs and this
  // one no longer does (its gRPC port's @grpc/grpc-js and grpc-health-check)
  // stays in devDependencies for it.
  symlinkSync(join(root, "node_modules"), join(dir, "node_modules"));
  return dir;
}

/** A release's server from its own tree (its own migrations folder), until it listens. */
async function start(tree: string, conf: string) {
  const server = spawnProcess(
    process.execPath,
    ["--import", tsx, join(tree, "cmd/server/main.ts"), "-conf", conf],
    { cwd: tree, env: { DATABASE_URL: undefined, KMS_ROOT_KEY: undefined } },
  );
  cleanup.push(() => server.child.kill("SIGKILL"));
  const ports = JSON.parse(await server.waitFor(/"msg":"listening/)) as { grpc: number };
  const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${ports.grpc}` });
  return { server, users: createClient(UserService, transport) };
}

const login = async (users: Client<typeof UserService>, name: string, password: string) =>
  (await users.verifyPassword({ login: name, password })).userId;

describe("users.password renamed to password_hash without downtime", () => {
  let db: TestDatabase;

  it("both releases serve through the expand, the contract waits for the old one, nothing is lost", async () => {
    db = await createTestDatabase();
    cleanup.push(() => db.drop());
    const previous = previousRelease();
    const dir = mkdtempSync(join(tmpdir(), "zero-downtime-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const migrate = (...args: string[]) => runMigrate(args, { env: { DATABASE_URL: db.url } });

    // Blue, the previous release, migrates the database to what it knows and serves.
    const blue = await start(previous, writeServerConfig(join(dir, "blue.yaml"), db.url));
    const user = (name: string) => ({
      username: name,
      password: `${name}-pass1`,
      email: `${name}@example.com`,
    });
    const early = (await blue.users.createUser(user("early_user"))).user!.id;
    expect(await query(db.url, "SELECT password IS NOT NULL AS ok FROM users")).toEqual([
      { ok: true },
    ]);

    // Expand, as the deploy runs it: the contract is left for later.
    const expand = await migrate("up", "--phase", "expand");
    expect(expand.code, expand.output).toBe(0);
    expect(expand.stdout).toMatch(/applied {2}000019_users_password_hash_expand/);
    expect(expand.stdout).toMatch(
      /stopped before 000020_users_password_hash_contract: it is a contract/,
    );

    // Green, the new release, checks the schema rather than migrating.
    const greenConf = writeServerConfig(join(dir, "green.yaml"), db.url);
    execFileSync("sed", ["-i", "s/migrate: up/migrate: check/", greenConf]);
    const green = await start(root, greenConf);

    // Each release's writes are the other's reads, both ways.
    const fromBlue = (await blue.users.createUser(user("from_blue"))).user!.id;
    const fromGreen = (await green.users.createUser(user("from_green"))).user!.id;
    expect(await login(green.users, "from_blue", "from_blue-pass1")).toBe(fromBlue);
    expect(await login(blue.users, "from_green", "from_green-pass1")).toBe(fromGreen);
    expect(await login(green.users, "early_user", "early_user-pass1")).toBe(early);
    await green.users.updateUser({
      id: early,
      password: "changed-by-green1",
      updateMask: { paths: ["password"] },
    });
    expect(await login(blue.users, "early_user", "changed-by-green1")).toBe(early);
    await blue.users.updateUser({
      id: fromGreen,
      password: "changed-by-blue1",
      updateMask: { paths: ["password"] },
    });
    expect(await login(green.users, "from_green", "changed-by-blue1")).toBe(fromGreen);

    // The contract waits while blue lives, naming it.
    const refused = await migrate("up", "--phase", "contract");
    expect(refused.code, refused.output).toBe(1);
    expect(refused.output).toMatch(
      new RegExp(
        `000020_users_password_hash_contract is a contract and 1 live instance\\(s\\) still need the schema before it: \\S+ pid ${blue.server.child.pid} `,
      ),
    );
    expect(
      await query(db.url, "SELECT count(*)::int AS n FROM pgmigrations WHERE name LIKE '000020%'"),
    ).toEqual([{ n: 0 }]);

    // Blue stops (traffic moved to green); its heartbeat goes with it.
    blue.server.child.kill("SIGTERM");
    expect(await blue.server.exited).toBe(0);
    const contract = await migrate("up", "--phase", "contract");
    expect(contract.code, contract.output).toBe(0);
    expect(contract.stdout).toMatch(/applied {2}000020_users_password_hash_contract/);

    // Green serves everything, every password as last set, and new writes.
    expect(await login(green.users, "early_user", "changed-by-green1")).toBe(early);
    expect(await login(green.users, "from_blue", "from_blue-pass1")).toBe(fromBlue);
    expect(await login(green.users, "from_green", "changed-by-blue1")).toBe(fromGreen);
    const late = (await green.users.createUser(user("late_user"))).user!.id;
    expect(await login(green.users, "late_user", "late_user-pass1")).toBe(late);
    expect(
      await query(
        db.url,
        `SELECT count(*)::int AS users, count(password_hash)::int AS hashed,
                (SELECT count(*)::int FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'password') AS old_column,
                (SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'password_hash') AS not_null
           FROM users`,
      ),
    ).toEqual([{ users: 4, hashed: 4, old_column: 0, not_null: true }]);
    green.server.child.kill("SIGTERM");
    expect(await green.server.exited).toBe(0);
  });
});
