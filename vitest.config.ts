import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // dawn.node has crashed V8 when an adapter is requested inside worker threads: use processes
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    include: ['test/**/*.test.ts'],
  },
});
