import { readFileSync } from "node:fs";

// How `npm start` runs the server (package.json's config): the Node flags it
// passes, and the malloc setting it exports. Benchmarks and the tests that
// measure memory run the server the same way.
const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
  config: { node_flags: string; malloc_mmap_threshold: string };
};

export const nodeFlags = pkg.config.node_flags.split(/\s+/).filter(Boolean);
export const startEnv: NodeJS.ProcessEnv = {
  MALLOC_MMAP_THRESHOLD_: pkg.config.malloc_mmap_threshold,
};
