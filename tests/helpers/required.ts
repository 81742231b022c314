/**
 * Tests that need a tool (a browser, MLflow, MinIO, the Temporal cluster binaries, a schema)
 * run when it is there. Without it: under CI=true one failing test that names what is missing and
 * what to run (a CI that silently skips tests nothing); locally a skip with a warning.
 */

/** `test` when `missing` is undefined; otherwise a failing test in CI, a skip elsewhere. */
export function testIfAvailable(what: string, missing: string | undefined): jest.It {
  if (missing === undefined) return test;
  if (process.env.CI === 'true') {
    test(`${what} is available (required in CI)`, () => {
      throw new Error(missing);
    });
  } else {
    console.warn(`SKIPPING tests that need ${what}: ${missing}`);
  }
  return test.skip;
}

/** The same for a whole `describe` block. */
export function describeIfAvailable(name: string, what: string, missing: string | undefined, body: () => void): void {
  if (missing === undefined) {
    describe(name, body);
  } else if (process.env.CI === 'true') {
    describe(name, () => testIfAvailable(what, missing));
  } else {
    console.warn(`SKIPPING "${name}": ${missing}`);
    describe.skip(name, body);
  }
}
