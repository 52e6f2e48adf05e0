import { Command, Option } from "commander";
import { describe, expect, it } from "vitest";
import { flags, goStyle, repeatedOption, runCli } from "../../internal/pkg/cli/cli.js";

class Usage extends Error {}
const usage = (message: string): never => {
  throw new Usage(message);
};

/** A small tool: `tool [--conf F] [--no-retry] (up [n] [--dry-run] | status [--mode M])`. */
function tool(seen: Record<string, unknown>[] = []) {
  const program = new Command("tool").option("--conf <file>").option("--no-retry");
  program
    .command("up")
    .argument("[n]")
    .option("--dry-run")
    .action((n: unknown, _o: unknown, cmd: Command) => void seen.push({ n, ...flags(cmd) }));
  program
    .command("status")
    .addOption(new Option("--mode <m>").choices(["a", "b"]))
    .action(() => {
      throw new Error("the command's own failure");
    });
  return program;
}

describe("goStyle", () => {
  it("reads a declared long option written with one dash as Go's flag package does", () => {
    expect(goStyle(tool(), ["-conf", "c.yaml", "up", "-dry-run", "-no-retry"])).toEqual([
      "--conf",
      "c.yaml",
      "up",
      "--dry-run",
      "--no-retry",
    ]);
    expect(goStyle(tool(), ["-conf=c.yaml"])).toEqual(["--conf=c.yaml"]);
  });

  it("leaves the value of an option as given, even one spelt like an option", () => {
    const program = tool();
    program.option("--operator <name>");
    expect(goStyle(program, ["--operator", "-conf", "-conf", "x"])).toEqual([
      "--operator",
      "-conf",
      "--conf",
      "x",
    ]);
    expect(goStyle(program, ["-help"])).toEqual(["--help"]);
  });

  it("leaves what it does not declare, numbers and everything after --", () => {
    expect(goStyle(tool(), ["-confx", "-1", "-h", "--", "-conf"])).toEqual([
      "-confx",
      "-1",
      "-h",
      "--",
      "-conf",
    ]);
  });
});

describe("repeatedOption", () => {
  it.each([
    [["--json", "--json"], "json"],
    [["--dry-run", "--dryRun"], "dry-run"],
    [["--retry", "--no-retry"], "retry"],
    [["--dir=a", "up", "--dir", "b"], "dir"],
    [["-conf", "a", "--conf", "b"], "conf"],
  ])("%j repeats %s", (argv, name) => {
    expect(repeatedOption(argv)).toBe(name);
  });

  it("finds nothing in distinct options or after --", () => {
    expect(repeatedOption(["--a", "--b", "--", "--a"])).toBeUndefined();
  });

  it("lets an option declared repeatable repeat, and only that one", () => {
    expect(repeatedOption(["--into", "a=1", "--into", "b=2"], ["into"])).toBeUndefined();
    expect(repeatedOption(["--into", "a=1", "--join", "x", "--join=y"], ["into"])).toBe("join");
  });
});

describe("runCli", () => {
  it("hands the action its options and its parents', by flag name, and its positional", async () => {
    const seen: Record<string, unknown>[] = [];
    await runCli(tool(seen), ["-conf", "c.yaml", "up", "3", "--dry-run", "--no-retry"], usage);
    expect(seen).toEqual([{ n: "3", conf: "c.yaml", "dry-run": true, retry: false }]);
  });

  it.each([
    [["up", "--bogus"], "unknown option '--bogus'"],
    [["sideways"], "unknown command 'sideways'"],
    [["up", "1", "2"], "too many arguments for 'up'"],
    [["status", "--mode", "c"], "Allowed choices are a, b"],
    [["--conf"], "argument missing"],
    [["up", "--dry-run", "--dry-run"], "--dry-run given more than once: give it once"],
    [[], "name a command: up or status"],
  ])("%j is a usage error naming %s", async (argv, named) => {
    const err = await runCli(tool(), argv, usage).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Usage);
    expect((err as Error).message).toContain(named);
  });

  it.each([
    [
      ["--database_url=postgres://u:s3cret@h/db", "up"],
      "unknown option '--database_url=…'",
      "s3cret",
    ],
    [["up", "1", "postgres://u:s3cret@h/db"], "got 2: postgres://…@h/db", "s3cret"],
  ])("%j is refused without the secret it carries", async (argv, named, secret) => {
    const err = (await runCli(tool(), argv, usage).catch((e: unknown) => e)) as Error;
    expect(err.message).toContain(named);
    expect(err.message).not.toContain(secret);
  });

  it("rethrows a command's own failure for the tool to map", async () => {
    await expect(runCli(tool(), ["status"], usage)).rejects.toThrow("the command's own failure");
  });
});
