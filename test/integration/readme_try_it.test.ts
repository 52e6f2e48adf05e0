import { exec } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { useTestApp } from "../helpers/app.js";

// The README's "Try it" commands, exactly as written there, against a running
// service (its ports put in for 8000 and 9000): a newcomer's first minutes
// must work, and a command added to that part without a check here fails.

const root = resolve(import.meta.dirname, "../..");
const ctx = useTestApp();

/** The shell commands of the README's "Try it" section, continuation lines joined. */
function tryItCommands(): string[] {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const start = readme.indexOf("\n## Try it\n");
  const part = readme.slice(start, readme.indexOf("\n## ", start + 1));
  const blocks = [...part.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  return blocks
    .join("")
    .replace(/\\\n\s*/g, "")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith("#"));
}

interface Expectation {
  /** Picks the README command this checks. */
  command: RegExp;
  exit: number;
  output: RegExp[];
}

// In the README's order: LookupUser finds the user CreateUser made.
const expectations: Expectation[] = [
  { command: /^curl -s localhost:8000\/readyz$/, exit: 0, output: [/"status":"ready"/] },
  {
    command: /^curl .*\/CreateUser /,
    exit: 0,
    output: [/"username":"alice"/, /"email":"alice@example.com"/],
  },
  {
    command: /^curl .*\/LookupUser /,
    exit: 0,
    output: [/"email":"a\*\*\*@example\.com"/, /"name":"A\*\*\*"/],
  },
  {
    command: /^curl .*\/GetUser /,
    exit: 0,
    output: [/"code":"invalid_argument"/, /invalid id: must be greater than 0/],
  },
  {
    command: /^curl .*\/v1\/users:lookup /,
    exit: 0,
    output: [/"username":"alice"/, /"email":"alice@example\.com"/],
  },
  {
    command: /^curl .*\/v1\/users\?page_size=10&view=VIEW_MASKED'$/,
    exit: 0,
    output: [/"users":\[\{/, /"email":"a\*\*\*@example\.com"/],
  },
  {
    command: /^curl -s localhost:8000\/v1\/users\/0$/,
    exit: 0,
    output: [/"code":"invalid_argument"/, /invalid id: must be greater than 0/],
  },
  {
    command: /^npx buf curl .*--list-methods http:\/\/localhost:9000$/,
    exit: 0,
    output: [/^user\.v1\.UserService\/LookupUser$/m, /^kms\.v1\.KmsService\/GetStatus$/m],
  },
  {
    command: /^npx buf curl .*Health\/Check$/,
    exit: 0,
    output: [/"status": "SERVING"/],
  },
  {
    command: /^npx buf curl .*localhost:9000\/user\.v1\.UserService\/LookupUser$/,
    exit: 0,
    output: [/"email": "a\*\*\*@example\.com"/, /"phone": "\+86\*\*\*\*8000"/],
  },
  {
    // The error's details decoded, not base64 only: its reason is printed.
    command: /^npx buf curl --schema \. .*localhost:8000\/user\.v1\.UserService\/GetUser$/,
    exit: 24,
    output: [/"type": "google\.rpc\.ErrorInfo"/, /"reason": "VALIDATION_FAILED"/],
  },
];

function run(command: string): Promise<{ code: number; output: string }> {
  const local = command
    .replaceAll("localhost:8000", `127.0.0.1:${ctx.app.httpPort}`)
    .replaceAll("localhost:9000", `127.0.0.1:${ctx.app.grpcPort}`);
  // Asynchronously: the service under test shares this process's event loop.
  return new Promise((done) => {
    exec(local, { cwd: root, timeout: 60_000, encoding: "utf8" }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
      done({ code, output: `${stdout}${stderr}` });
    });
  });
}

describe("the README's Try it", () => {
  it("When a newcomer runs each command in order, Then each answers as the README says", async () => {
    const commands = tryItCommands();
    // Every command is checked, each by exactly one expectation, in order.
    expect(
      commands.map((c) => expectations.findIndex((e) => e.command.test(c))),
      commands.join("\n"),
    ).toEqual(expectations.map((_, i) => i));
    for (const [i, command] of commands.entries()) {
      const expected = expectations[i]!;
      const r = await run(command);
      expect(r.code, `${command}\n${r.output}`).toBe(expected.exit);
      for (const pattern of expected.output) expect(r.output, command).toMatch(pattern);
    }
  }, 180_000);
});
