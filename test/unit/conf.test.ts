import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, parseConfig } from "../../internal/conf/load.js";
import { toProtoDuration } from "../../internal/conf/duration.js";

const key = Buffer.alloc(32, 1).toString("base64");
const minimal = () => ({ kms: { root_key: key } });

function failure(tree: unknown, env: NodeJS.ProcessEnv = {}): string {
  try {
    parseConfig(tree, "t.yaml", env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("config was accepted");
}

describe("configs/config.yaml", () => {
  it("loads, with Kratos' default ports on loopback only (authentication is off) and Go-style durations", () => {
    const conf = loadConfig("configs/config.yaml", {});
    expect(conf.server?.grpc?.addr).toBe("127.0.0.1:9000");
    expect(conf.server?.http?.addr).toBe("127.0.0.1:8000");
    expect(conf.auth?.enabled).toBe(false);
    expect(durationMs(conf.kms!.rotateInterval!)).toBe(720 * 3600 * 1000);
    expect(conf.data?.database?.migrate).toBe("up");
  });
});

describe("defaults", () => {
  it("fill every key a minimal file leaves out", () => {
    const conf = parseConfig(minimal(), "t.yaml");
    expect(conf.server?.grpc?.addr).toBe("0.0.0.0:9000");
    expect(durationMs(conf.server!.shutdownTimeout!)).toBe(10_000);
    expect(conf.data?.database?.poolSize).toBe(10);
    expect(conf.data?.database?.migrate).toBe("check");
    expect(conf.kms?.algorithm).toBe("AES-256-GCM");
    expect(conf.auth?.enabled).toBe(true);
  });
});

describe("a bad config is refused with one line naming the field", () => {
  it.each([
    [{ server: { grpc: { adr: "x" } } }, /^config t\.yaml: server\.grpc\.adr: unknown field/],
    [
      { data: { database: { pool_size: "ten" } } },
      /^config t\.yaml: data\.database\.pool_size: expected number/,
    ],
    [
      { data: { database: { pool_size: 0 } } },
      /^config t\.yaml: data\.database\.pool_size: must be greater than or equal to 1/,
    ],
    [
      { data: { database: { migrate: "later" } } },
      /^config t\.yaml: data\.database\.migrate: must be in list/,
    ],
    [{ data: { database: { source: "mysql://x" } } }, /^config t\.yaml: data\.database\.source: /],
    [
      { data: { database: { source: "postgres://h/db", direct_source: "mysql://x" } } },
      /^config t\.yaml: data\.database\.direct_source: /,
    ],
    [
      { data: { database: { direct_source: "postgres://h/db" } } },
      /^config t\.yaml: data\.database: direct_source needs source/,
    ],
    [
      { server: { http: { addr: "localhost" } } },
      /^config t\.yaml: server\.http\.addr: must be a valid host/,
    ],
    [{ server: { grpc: { timeout: "soon" } } }, /^config t\.yaml: server\.grpc\.timeout: /],
    [
      { server: { grpc: { timeout: "0s" } } },
      /^config t\.yaml: server\.grpc\.timeout: must be greater than 0s/,
    ],
    [{ log: { level: "loud" } }, /^config t\.yaml: log\.level: must be in list/],
    [{ kms: { algorithm: "DES" } }, /^config t\.yaml: kms\.algorithm: must be in list/],
    [{ server: "yes" }, /^config t\.yaml: server: must be a mapping/],
    [
      { server: { max_inflight_request_bytes: 2 ** 22, grpc: { max_request_bytes: 2 ** 22 } } },
      /^config t\.yaml: server: max_inflight_request_bytes must be at least twice grpc\.max_request_bytes/,
    ],
  ])("%j", (tree, message) => {
    const text = failure({
      ...minimal(),
      ...tree,
      kms: { ...minimal().kms, ...(tree as { kms?: object }).kms },
    });
    expect(text).toMatch(message);
    expect(text.split("\n")).toHaveLength(1);
  });

  it("requires exactly one root key source", () => {
    expect(failure({ kms: {} })).toMatch(
      /^config t\.yaml: kms: set exactly one of root_key, root_key_file, seed/,
    );
    expect(failure({ kms: { root_key: key, seed: "s", salt: "x", iterations: 100000 } })).toMatch(
      /exactly one/,
    );
  });

  it("checks a root key's shape without echoing it", () => {
    const text = failure({ kms: { root_key: "c2hvcnQta2V5LXZhbHVl" } });
    expect(text).toMatch(/^config t\.yaml: kms\.root_key: must be 32 bytes in base64/);
    expect(text).not.toContain("c2hvcnQta2V5LXZhbHVl");
  });

  it("holds a seed to the Go original's rules: salt and at least 100000 iterations", () => {
    expect(failure({ kms: { seed: "s", salt: "x", iterations: 1000 } })).toMatch(
      /kms\.iterations: must be greater than or equal to 100000/,
    );
    expect(failure({ kms: { seed: "s" } })).toMatch(/kms: seed needs a salt/);
    expect(() =>
      parseConfig({ kms: { seed: "s", salt: "x", iterations: 100000 } }, "t.yaml"),
    ).not.toThrow();
  });

  it("reports unreadable files and broken YAML", () => {
    expect(() => loadConfig("/nonexistent/config.yaml", {})).toThrow(
      /config \/nonexistent\/config\.yaml: cannot read: ENOENT/,
    );
    const dir = mkdtempSync(join(tmpdir(), "conf-"));
    writeFileSync(join(dir, "c.yaml"), "server: [unclosed\n");
    expect(() => loadConfig(join(dir, "c.yaml"), {})).toThrow(/not valid YAML/);
  });
});

describe("environment overrides", () => {
  it("DATABASE_URL replaces data.database.source", () => {
    const conf = parseConfig(minimal(), "t.yaml", { DATABASE_URL: "postgres://u@h:1/db" });
    expect(conf.data?.database?.source).toBe("postgres://u@h:1/db");
  });

  it("DATABASE_DIRECT_URL replaces data.database.direct_source; unset, it stays empty (the source serves for both)", () => {
    const pooled = { ...minimal(), data: { database: { source: "postgres://u@pooler:6432/db" } } };
    expect(parseConfig(pooled, "t.yaml", {}).data?.database?.directSource).toBe("");
    const conf = parseConfig(pooled, "t.yaml", { DATABASE_DIRECT_URL: "postgres://u@h:5432/db" });
    expect(conf.data?.database?.source).toBe("postgres://u@pooler:6432/db");
    expect(conf.data?.database?.directSource).toBe("postgres://u@h:5432/db");
    expect(failure(minimal(), { DATABASE_DIRECT_URL: "not-a-url" })).toMatch(
      /^environment DATABASE_DIRECT_URL \(data\.database\.direct_source\): /,
    );
  });

  it("refuses DATABASE_URL beside the file's direct_source, which may name another database, unless DATABASE_DIRECT_URL replaces it too", () => {
    const both = {
      ...minimal(),
      data: {
        database: { source: "postgres://u@pooler:6432/a", direct_source: "postgres://u@h/a" },
      },
    };
    expect(failure(both, { DATABASE_URL: "postgres://u@pooler:6432/b" })).toMatch(
      /^config t\.yaml: DATABASE_URL replaces data\.database\.source, but data\.database\.direct_source .* set DATABASE_DIRECT_URL too/,
    );
    const conf = parseConfig(both, "t.yaml", {
      DATABASE_URL: "postgres://u@pooler:6432/b",
      DATABASE_DIRECT_URL: "postgres://u@h/b",
    });
    expect(conf.data?.database?.directSource).toBe("postgres://u@h/b");
  });

  it("KMS_ROOT_KEY replaces every root key source in the file", () => {
    const other = Buffer.alloc(32, 2).toString("base64");
    const conf = parseConfig({ kms: { seed: "s", salt: "x", iterations: 100000 } }, "t.yaml", {
      KMS_ROOT_KEY: other,
    });
    expect(conf.kms?.rootKey).toBe(other);
    expect(conf.kms?.seed).toBe("");
  });

  it("When an environment variable holds a bad value, Then the error names the variable and the field, not the file", () => {
    for (const [env, value, field] of [
      ["DATABASE_URL", "not-a-url", "data.database.source"],
      ["GRPC_ADDR", "nonsense", "server.grpc.addr"],
      ["LOG_LEVEL", "loud", "log.level"],
      ["KMS_ROOT_KEY", "abc", "kms.root_key"],
      ["KMS_PREVIOUS_ROOT_KEY_UNTIL", "tomorrow", "kms.previous_root_key.until"],
    ] as const) {
      const message = failure(minimal(), { [env]: value });
      expect(message).toMatch(
        new RegExp(`^environment ${env} \\(${field.replace(/\./g, "\\.")}\\): `),
      );
      expect(message).not.toContain("t.yaml");
    }
  });

  it("refuses a migration wait longer than a timer or PostgreSQL holds (24 days), naming the field", () => {
    for (const field of [
      "lock_wait",
      "lock_timeout",
      "statement_timeout",
      "old_transaction_age",
      "backup_timeout",
    ]) {
      const tree = { ...minimal(), data: { database: { migration: { [field]: "720h" } } } };
      expect(failure(tree)).toMatch(new RegExp(`data\\.database\\.migration\\.${field}`));
      const fine = { ...minimal(), data: { database: { migration: { [field]: "24h" } } } };
      expect(() => parseConfig(fine, "t.yaml", {})).not.toThrow();
    }
  });

  it("takes a heartbeat_interval of 10s by default and one of at least 1s from the file", () => {
    const migration = (c: ReturnType<typeof parseConfig>) => c.data!.database!.migration!;
    expect(durationMs(migration(parseConfig(minimal(), "t.yaml", {})).heartbeatInterval!)).toBe(
      10_000,
    );
    for (const [value, ms] of [
      ["1s", 1000],
      ["1m30s", 90_000],
    ] as const) {
      const tree = {
        ...minimal(),
        data: { database: { migration: { heartbeat_interval: value } } },
      };
      expect(durationMs(migration(parseConfig(tree, "t.yaml", {})).heartbeatInterval!)).toBe(ms);
    }
  });

  it.each([
    "0s",
    "-1s",
    "-10s",
    "999ms",
    "500ms",
    "720h",
    "soon",
    "10",
    "",
    "1s\u0000",
    "1sXYZ",
    "2s garbage",
    "5s\n",
  ])("refuses heartbeat_interval %j, naming the field", (value) => {
    const tree = { ...minimal(), data: { database: { migration: { heartbeat_interval: value } } } };
    expect(failure(tree)).toMatch(
      /^config t\.yaml: data\.database\.migration\.heartbeat_interval: /,
    );
  });

  it("refuses a duration with anything after it (protobuf-es alone would read 1sXYZ as 1s)", () => {
    for (const value of ["1sXYZ", "1s\u0000", "soon"]) {
      expect(failure({ ...minimal(), server: { drain_delay: value } })).toBe(
        "config t.yaml: server.drain_delay: not a duration (write one such as 10s, 1m30s or 250ms)",
      );
    }
  });

  it("refuses a heartbeat_interval that is not a duration at all (a number, a list)", () => {
    for (const value of [10, [], { seconds: 10 }]) {
      const tree = {
        ...minimal(),
        data: { database: { migration: { heartbeat_interval: value } } },
      };
      expect(failure(tree)).toMatch(/data\.database\.migration\.heartbeat_interval/);
    }
  });

  it("When the file holds the bad value, Then the error still names the file", () => {
    expect(
      failure({ ...minimal(), log: { level: "loud" } }, { DATABASE_URL: "postgres://h/db" }),
    ).toMatch(/^config t\.yaml: log\.level: /);
  });
});

describe("production", () => {
  it("refuses a root key written in the config file", () => {
    expect(failure(minimal(), { APP_ENV: "production" })).toMatch(
      /kms\.root_key: a root key written in the config is for development only/,
    );
    expect(failure(minimal(), { NODE_ENV: "production" })).toMatch(/development only/);
  });

  it("refuses authentication off, naming the setting", () => {
    const key = Buffer.alloc(32, 3).toString("base64");
    const env = { APP_ENV: "production", KMS_ROOT_KEY: key };
    expect(failure({ ...minimal(), auth: { enabled: false } }, env)).toMatch(
      /^config t\.yaml: auth\.enabled: authentication must be on in production/,
    );
    expect(
      failure(
        { ...minimal(), auth: { enabled: false } },
        { ...env, APP_ENV: "", NODE_ENV: "production" },
      ),
    ).toMatch(/auth\.enabled/);
  });

  it("reads an empty or null auth section as the default, on, never as off", () => {
    const env = { APP_ENV: "production", KMS_ROOT_KEY: Buffer.alloc(32, 3).toString("base64") };
    for (const auth of [null, { enabled: null }, {}]) {
      expect(parseConfig({ ...minimal(), auth }, "t.yaml", env).auth?.enabled).toBe(true);
    }
  });

  it("refuses the development root key in any base64 spelling", () => {
    const dev = /root_key: (\S+)/.exec(readFileSync("configs/config.yaml", "utf8"))![1]!;
    const other = dev.replace(/I=$/, "J=");
    expect(Buffer.from(other, "base64").equals(Buffer.from(dev, "base64"))).toBe(true);
    expect(failure(minimal(), { APP_ENV: "production", KMS_ROOT_KEY: other })).toMatch(
      /development root key/,
    );
  });

  it("refuses the development root key, even from the environment", () => {
    const dev = /root_key: (\S+)/.exec(readFileSync("configs/config.yaml", "utf8"))![1]!;
    expect(failure(minimal(), { APP_ENV: "production", KMS_ROOT_KEY: dev })).toMatch(
      /^environment KMS_ROOT_KEY \(kms\.root_key\): the development root key/,
    );
  });

  it("refuses a token digest that is not 64 hex digits, in any environment", () => {
    const token = (sha256: string) => ({
      ...minimal(),
      auth: { tokens: [{ name: "bot", sha256, scopes: ["kms.admin"] }] },
    });
    expect(failure(token("abc"))).toMatch(
      /^config t\.yaml: auth\.tokens\[0\]\.sha256: must be the token's SHA-256/,
    );
    expect(failure(token("z".repeat(64)))).toMatch(/sha256/);
    expect(() => parseConfig(token("a".repeat(64)), "t.yaml")).not.toThrow();
  });

  it("refuses an unknown scope, naming it", () => {
    const conf = {
      ...minimal(),
      auth: { tokens: [{ name: "bot", sha256: "a".repeat(64), scopes: ["kms.admn"] }] },
    };
    expect(failure(conf)).toMatch(/auth\.tokens\[0\]\.scopes\[0\]/);
  });

  it("accepts the root key from the environment or a file", () => {
    const key = Buffer.alloc(32, 3).toString("base64");
    expect(() =>
      parseConfig(minimal(), "t.yaml", { APP_ENV: "production", KMS_ROOT_KEY: key }),
    ).not.toThrow();
    expect(() =>
      parseConfig({ kms: { root_key_file: "/run/secrets/root" } }, "t.yaml", {
        APP_ENV: "production",
      }),
    ).not.toThrow();
  });
});

describe("Go-style durations", () => {
  it.each([
    ["720h", "2592000s"],
    ["1m30s", "90s"],
    ["250ms", "0.25s"],
    ["1.5h", "5400s"],
    ["1ns", "0.000000001s"],
    ["100ms", "0.1s"],
    ["100s", "100s"],
    ["5x", "5x"],
  ])("%s -> %s", (input, output) => expect(toProtoDuration(input)).toBe(output));
});

describe("kms.previous_root_key (a root-key rotation)", () => {
  const previous = Buffer.alloc(32, 3).toString("base64");
  const withPrevious = (p: Record<string, unknown>) => ({
    kms: { root_key: key, previous_root_key: p },
  });

  it("needs the end of its window and exactly one source, naming the field", () => {
    expect(failure(withPrevious({ root_key: previous }))).toMatch(
      /kms\.previous_root_key\.until: value is required/,
    );
    expect(failure(withPrevious({ until: "2027-01-31T00:00:00Z" }))).toMatch(
      /kms\.previous_root_key: set exactly one of root_key, root_key_file, seed/,
    );
    expect(failure(withPrevious({ root_key: previous, until: "next week" }))).toMatch(
      /kms\.previous_root_key\.until/,
    );
    expect(failure(withPrevious({ root_key: "c2hvcnQ=", until: "2027-01-31T00:00:00Z" }))).toMatch(
      /kms\.previous_root_key\.root_key: must be 32 bytes/,
    );
  });

  it("comes from KMS_PREVIOUS_ROOT_KEY and KMS_PREVIOUS_ROOT_KEY_UNTIL", () => {
    const conf = parseConfig(minimal(), "t.yaml", {
      KMS_PREVIOUS_ROOT_KEY: previous,
      KMS_PREVIOUS_ROOT_KEY_UNTIL: "2027-01-31T00:00:00Z",
    });
    expect(conf.kms?.previousRootKey?.rootKey).toBe(previous);
    expect(Number(conf.kms?.previousRootKey?.until?.seconds)).toBe(
      Date.parse("2027-01-31T00:00:00Z") / 1000,
    );
  });

  it("is refused written in the config file in production", () => {
    const tree = withPrevious({ root_key: previous, until: "2027-01-31T00:00:00Z" });
    expect(failure(tree, { APP_ENV: "production", KMS_ROOT_KEY: key })).toMatch(
      /kms\.previous_root_key\.root_key: a root key written in the config is for development only/,
    );
  });
});
