import { defineConfig } from "vitest/config";

// `npm run test:reliability`: failure as part of the contract (a database
// restart under write load, SIGTERM under load, revocation across instances
// under load). Loopback only; every load loop is bounded in count and time.
export default defineConfig({
  test: {
    include: ["test/reliability/**/*.test.ts"],
    globalSetup: ["test/global_setup.ts"],
    testTimeout: 180_000,
    hookTimeout: 120_000,
    maxWorkers: 1,
  },
});
