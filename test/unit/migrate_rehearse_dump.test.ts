import { describe, expect, it } from "vitest";
import { dumpCommand } from "../../internal/migrate/rehearse/dump.js";

// pg_dump's arguments are visible to every user of the host: the password
// reaches it only through the environment, wherever the URL carried it.

const dbname = (args: string[]) => args.find((a) => a.startsWith("--dbname="))!.slice(9);

describe("the pg_dump command of a rehearsal", () => {
  it.each([
    ["in the userinfo", "postgres://alice:s3cret%40x@db.example:5432/app?sslmode=require"],
    [
      "in the query string",
      "postgres://alice@db.example:5432/app?password=s3cret%40x&sslmode=require",
    ],
    [
      "in both (the query's wins, as in libpq)",
      "postgres://alice:other@db.example:5432/app?sslmode=require&password=s3cret%40x",
    ],
  ])(
    "When the password is %s, Then it is in PGPASSWORD and nowhere in the arguments",
    (_where, url) => {
      const { args, env } = dumpCommand(url, 2500, { PATH: "/bin" });

      expect(env).toEqual({ PATH: "/bin", PGPASSWORD: "s3cret@x" });
      for (const a of args) {
        expect(a).not.toContain("s3cret");
        expect(a).not.toContain("other");
      }
      const target = new URL(dbname(args));
      expect([target.username, target.password, target.host, target.pathname]).toEqual([
        "alice",
        "",
        "db.example:5432",
        "/app",
      ]);
      expect([...target.searchParams]).toEqual([["sslmode", "require"]]);
    },
  );

  it("When other parameters are percent-encoded, Then they reach pg_dump as written (no + for a space), and a + in the password stays a +", () => {
    const { args, env } = dumpCommand(
      "postgres://alice@db.example/app?options=-c%20statement_timeout%3D5s&password=a+b%26c",
      2500,
      {},
    );

    expect(dbname(args)).toBe(
      "postgres://alice@db.example/app?options=-c%20statement_timeout%3D5s",
    );
    expect(env).toEqual({ PGPASSWORD: "a+b&c" });
  });

  it("When the URL has no password, Then the environment is passed as it is", () => {
    const env = { PATH: "/bin", PGPASSWORD: "from-the-operator" };

    const cmd = dumpCommand("postgres://alice@db.example/app", 2500, env);

    expect(cmd.env).toBe(env);
    expect(dbname(cmd.args)).toBe("postgres://alice@db.example/app");
  });

  it("When built, Then it dumps the schema only and waits for a lock no longer than asked", () => {
    const { args } = dumpCommand("postgres://alice@db.example/app", 2500.7, {});

    expect(args).toContain("--schema-only");
    expect(args).toContain("--lock-wait-timeout=2500");
  });
});
