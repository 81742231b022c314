// Tests run on the compiled output (dist/), the same JavaScript the CLI and the worker run:
// training child processes and the workflow bundler then load exactly what the tests exercised.
module.exports = {
  rootDir: 'dist',
  testEnvironment: 'node',
  testMatch: ['<rootDir>/tests/**/*.test.js'],
  setupFiles: ['<rootDir>/tests/helpers/env.js'],
  testTimeout: 120_000,
  maxWorkers: 1,
  verbose: true,
};
