import { readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

// Kratos's direction, kept: the RPC dialect (internal/transport) is a leaf
// both sides import; services implement it and never reach into the server
// that carries them.

const internal = resolve(import.meta.dirname, "../../internal");

/** Every relative import of the hand-written .ts files under `dir`, as paths under internal/. */
function importsUnder(dir: string): { file: string; target: string }[] {
  const found: { file: string; target: string }[] = [];
  for (const entry of readdirSync(join(internal, dir), { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith(".ts") || entry.name.endsWith("_pb.ts")) continue;
    const path = join(entry.parentPath, entry.name);
    const text = readFileSync(path, "utf8");
    for (const [, spec] of text.matchAll(/^(?:import|export)[^;]*?from "(\.[^"]+)"/gms)) {
      found.push({
        file: relative(internal, path),
        target: relative(internal, resolve(entry.parentPath, spec!)),
      });
    }
  }
  return found;
}

describe("the transport dialect's place", () => {
  it("When a service imports, Then never from the server", () => {
    const imports = importsUnder("service");
    expect(imports.length).toBeGreaterThan(0);
    expect(imports.filter((i) => i.target.startsWith("server/"))).toEqual([]);
  });

  it("When the transport package imports, Then only itself", () => {
    const imports = importsUnder("transport");
    expect(imports.length).toBeGreaterThan(0);
    expect(imports.filter((i) => !i.target.startsWith("transport/"))).toEqual([]);
  });
});
