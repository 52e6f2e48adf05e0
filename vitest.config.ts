import { defineConfig } from "vitest/config";

// Two projects. `unit` proves biz and the small packages in memory: no
// PostgreSQL, no transpiled sources, so `npm run test:unit` takes seconds.
// `integration` runs real servers, clients and CLIs on a real PostgreSQL
// (DATABASE_URL, else one embedded for the run).
export default defineConfig({
  test: {
    // Run by `npm run test:reliability` (vitest.reliability.config.ts).
    exclude: ["test/reliability/**", "node_modules/**"],
    // Each integration file gets its own database; two workers match the machine's cores.
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          testTimeout: 10_000,
          // One module graph per worker, not per file: half the CPU of the
          // project (grpc-js, connect and protobuf-es load once). Unit files
          // therefore leave no global state behind (fake timers restored,
          // no shared registries written).
          isolate: false,
        },
      },
      {
        extends: true,
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          globalSetup: ["test/global_setup.ts"],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
