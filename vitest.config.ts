import { defineConfig } from "vitest/config"

// The workspace packages' TypeScript sources (their `@effect-batch/source` export condition) before
// vitest's default server conditions, which a condition list set here replaces.
const conditions = ["@effect-batch/source", "node", "development|production"]

export default defineConfig({
  ssr: { resolve: { conditions } },
  test: {
    // bundles the dashboard's script (`packages/server/dashboard/app.js`) once, before any test file
    globalSetup: ["test/support/DashboardScript.ts"],
    include: ["packages/*/test/**/*.test.ts", "test/**/*.test.ts"],
    exclude: ["**/node_modules/**", "**/build/**"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: true,
    // two files at a time on the 2-core machines this runs on: most files wait on processes, sockets
    // and Postgres more than they compute
    maxWorkers: 2,
    pool: "forks"
  }
})
