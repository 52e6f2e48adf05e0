import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runAs, runnableBinaries } from "../../internal/pkg/embedded_pg/binaries.js";
import {
  initdb,
  postgresEnvironment,
  startPostmaster,
} from "../../internal/pkg/embedded_pg/postgres_process.js";
import { createLogger } from "../../internal/pkg/log/logger.js";

const silent = createLogger({ level: "silent", format: "json" });
const dir = mkdtempSync(join(tmpdir(), "kbts-pgproc-"));
chmodSync(dir, 0o755); // as root, PostgreSQL runs as `postgres` and must enter it
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// What fails here must come back as an error naming the problem: a failed
// spawn used to be an unhandled 'error' event that killed the process.
describe("running the embedded PostgreSQL binaries", () => {
  it("a missing initdb is an error naming it, and the password file does not stay behind", async () => {
    const bins = { initdb: join(dir, "no-such-initdb"), postgres: join(dir, "no-such-postgres") };
    const home = join(dir, "missing");
    await expect(initdb(bins, join(home, "postgres"), "pw", undefined)).rejects.toThrow(
      `${bins.initdb} failed (ENOENT)`,
    );
    expect(readdirSync(home)).toEqual(["postgres"]);
  });

  it("a postgres that cannot start is an error carrying its own reason", async () => {
    const user = runAs(silent);
    // As the server does: from a checkout the postgres user cannot enter (a
    // private home), the binaries run from a copy it can reach.
    const bins = await runnableBinaries(user, silent);
    const notACluster = join(dir, "not-a-cluster");
    mkdirSync(notACluster, { mode: 0o700 });
    writeFileSync(join(notACluster, "PG_VERSION"), "18\n");
    if (user) chownSync(notACluster, user.uid, user.gid);
    await expect(startPostmaster(bins, notACluster, 1, user, silent)).rejects.toThrow(
      /did not start: .*postgresql\.conf/,
    );
  });

  it("hands PostgreSQL none of the service's secrets, only what it needs", () => {
    const env = postgresEnvironment({
      PATH: "/usr/bin",
      LANG: "C.UTF-8",
      KMS_ROOT_KEY: "c2VjcmV0",
      KMS_PREVIOUS_ROOT_KEY: "c2VjcmV0",
      DATABASE_URL: "postgres://u:pw@h/db",
      AUTH_TOKEN: "t",
    });
    expect(env).toEqual({ PATH: "/usr/bin", LANG: "C.UTF-8", LC_MESSAGES: "C" });
  });
});
