import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { docsCommands } from "../docs_commands.js";

// The docs stay true: every command they show in a shell block is run by a
// test or a CI step named in test/docs_commands.ts, and every relative link
// leads to a file and heading that exist. The docs: the README, docs/ and the
// client examples' READMEs.

const root = resolve(import.meta.dirname, "../..");
const docs = [
  "README.md",
  ...readdirSync(join(root, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`),
  "examples/README.md",
  ...readdirSync(join(root, "examples"))
    .map((f) => `examples/${f}/README.md`)
    .filter((f) => existsSync(join(root, f))),
];
const read = (file: string) => readFileSync(join(root, file), "utf8");

interface Block {
  lang: string;
  body: string;
}

// Blocks indented under a list item count too: a command in a numbered
// step is as much shown as one at the margin.
function blocks(markdown: string): Block[] {
  return [...markdown.matchAll(/^([ \t]*)```(\w*)\n([\s\S]*?)^\1```$/gm)].map((m) => ({
    lang: m[2]!,
    body: m[3]!.replace(new RegExp(`^${m[1]}`, "gm"), ""),
  }));
}

const shell = new Set(["sh", "bash", "shell", "console"]);

/** The commands of a shell block: continuation lines joined, comments dropped. */
function commands({ lang, body }: Block): string[] {
  return body
    .replace(/\\\n\s*/g, "")
    .split("\n")
    .filter((line) => lang !== "console" || line.startsWith("$ "))
    .map((line) => (lang === "console" ? line.slice(2) : line))
    .map((line) => line.replace(/\s+#\s.*$/, "").trim())
    .filter((line) => line && !line.startsWith("#"));
}

const shown = new Map<string, string>(); // command -> first doc showing it
for (const doc of docs) {
  for (const block of blocks(read(doc))) {
    if (!shell.has(block.lang)) continue;
    for (const command of commands(block)) if (!shown.has(command)) shown.set(command, doc);
  }
}

describe("the commands the docs show", () => {
  it("When a doc shows a command in a shell block, Then test/docs_commands.ts names what runs it", () => {
    const unlisted = [...shown].filter(([c]) => !docsCommands[c]).map(([c, doc]) => `${doc}: ${c}`);
    expect(unlisted, "add the test or CI step that runs each, then its entry").toEqual([]);
  });

  it("When a doc runs a program, Then it runs on the project's Node: through npm or npx, never the machine's `node`", () => {
    // The machine's own `node` may be older than the project's, which npm
    // install brings and npm scripts and npx put first on PATH.
    const bare = [...shown].filter(([c]) =>
      /(^|[\s;&|(])node\s/.test(c.replace(/\bnpx node\s/g, "")),
    );
    expect(bare.map(([c, doc]) => `${doc}: ${c}`)).toEqual([]);
  });

  it("When an entry of test/docs_commands.ts is shown nowhere any more, Then it is flagged", () => {
    expect(Object.keys(docsCommands).filter((c) => !shown.has(c))).toEqual([]);
  });

  it("When an entry names a file, Then that file exists and holds what the entry says shows the command", () => {
    const wrong: string[] = [];
    for (const [command, runners] of Object.entries(docsCommands)) {
      expect(runners.length, command).toBeGreaterThan(0);
      for (const { file, shows } of runners) {
        const path = join(root, file);
        if (!existsSync(path)) {
          wrong.push(`${command}: ${file} does not exist`);
          continue;
        }
        const text = readFileSync(path, "utf8");
        for (const s of shows) if (!text.includes(s)) wrong.push(`${command}: ${file} lacks ${s}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("When the token recipe of docs/security.md runs as written, Then it prints the SHA-256 of the token it made", () => {
    const recipe = blocks(read("docs/security.md")).find(
      (b) => shell.has(b.lang) && b.body.includes("openssl rand -base64 32"),
    );
    expect(recipe).toBeDefined();
    // The digest's line, then the token, printed by a line added here.
    const r = execFileSync("bash", ["-c", `${recipe!.body}printf %s "$TOKEN"`], {
      encoding: "utf8",
    });
    const [digest, token] = r.trim().split("\n");
    expect(digest).toMatch(/^[0-9a-f]{64}$/);
    expect(token).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(digest).toBe(createHash("sha256").update(token!).digest("hex"));
  });
});

/** GitHub's anchor for a heading. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, "")
    .replace(/ /g, "-");
}

function anchors(markdown: string): Set<string> {
  const prose = markdown.replace(/^```[\s\S]*?^```$/gm, "");
  return new Set([...prose.matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1]!)));
}

describe("the links between the docs", () => {
  it("When a doc links to a file or a heading of this repository, Then it exists", () => {
    const broken: string[] = [];
    for (const doc of docs) {
      const prose = read(doc)
        .replace(/^```[\s\S]*?^```$/gm, "")
        .replace(/`[^`]*`/g, "");
      for (const [, target] of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue;
        const [path, anchor] = target!.split("#");
        const file = path ? relative(root, resolve(root, dirname(doc), path)) : doc;
        if (!existsSync(join(root, file))) {
          broken.push(`${doc}: ${target} (no ${file})`);
          continue;
        }
        if (anchor && !anchors(read(file)).has(anchor))
          broken.push(`${doc}: ${target} (no heading)`);
      }
    }
    expect(broken).toEqual([]);
  });
});
