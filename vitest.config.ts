import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Run by `npm run test:reliability` (vitest.reliability.config.ts).
    exclude: ["test/reliability/**", "node_modules/**"],
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Each file gets its own database; two workers match the machine's cores.
    maxWorkers: 2,
  },
});
