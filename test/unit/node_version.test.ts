import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { NODE_MAJOR, nodeRefusal } from "../../internal/pkg/cli/node_version.js";

const root = resolve(import.meta.dirname, "../..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  engines: { node: string };
  devDependencies: Record<string, string>;
};

describe("the Node the project runs on", () => {
  it("is one version everywhere: the refusal, engines, .nvmrc and the pinned `node` package", () => {
    expect(pkg.engines.node).toBe(`>=${NODE_MAJOR}`);
    expect(readFileSync(join(root, ".nvmrc"), "utf8").trim()).toBe(String(NODE_MAJOR));
    expect(pkg.devDependencies.node).toMatch(new RegExp(`^${NODE_MAJOR}\\.\\d+\\.\\d+$`));
  });

  it("runs these tests: npm scripts and npx put the pinned Node first on PATH", () => {
    expect(process.versions.node).toBe(pkg.devDependencies.node);
  });
});

describe("nodeRefusal", () => {
  const script = "/srv/app/dist/cmd/migrate/main.js";

  it("lets the Node it needs and newer ones run", () => {
    expect(nodeRefusal(`${NODE_MAJOR}.0.0`, script, [], "/srv/app", "/srv/app")).toBeUndefined();
    expect(
      nodeRefusal(`${NODE_MAJOR + 2}.1.0`, script, [], "/srv/app", "/srv/app"),
    ).toBeUndefined();
  });

  it("names the program, the Node needed, this one, and the npx command from inside the checkout", () => {
    expect(nodeRefusal("20.20.2", script, ["up", "--dry-run"], "/srv/app", "/srv/app")).toBe(
      `migrate: needs Node ${NODE_MAJOR} or newer, this is Node 20.20.2; ` +
        "run it on the Node that npm install brings: npx node dist/cmd/migrate/main.js up --dry-run",
    );
    expect(nodeRefusal("20.20.2", script, ["status"], "/srv/app/migrations", "/srv/app")).toMatch(
      /: npx node \.\.\/dist\/cmd\/migrate\/main\.js status$/,
    );
  });

  it("from outside the checkout names it with npm exec --prefix (npx would fetch another Node)", () => {
    expect(
      nodeRefusal("18.0.0", "/srv/app/cmd/kms/main.ts", ["audit"], "/root", "/srv/app"),
    ).toMatch(
      /^kms: .*: npm exec --prefix=\/srv\/app -- node \/srv\/app\/cmd\/kms\/main\.ts audit$/,
    );
  });

  it("quotes arguments the shell would split or expand, so the command can be pasted", () => {
    expect(
      nodeRefusal(
        "20.0.0",
        script,
        ["up", "--backup-command", `pg_dump "$URL" > it's`],
        "/srv/app",
      ),
    ).toMatch(/ up --backup-command 'pg_dump "\$URL" > it'\\''s'$/);
  });
});
