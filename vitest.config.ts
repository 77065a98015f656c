import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Builds dist/ first when a source is newer than its output: threads and child processes run dist/.
    globalSetup: ['test/support/fresh-build.ts'],
    // Tests start real servers, pools and child processes: give them room on a 2-core machine.
    testTimeout: 30_000,
    hookTimeout: 30_000,
    fileParallelism: false
  }
})
