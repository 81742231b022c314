import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { SweepResult } from '../../workflows/sweep';
import { json, runCli, startUserStack, waitFor, type UserStack } from '../helpers/processes';
import { tinyPipeline } from '../helpers/pipelines';

/**
 * The Temporal Web UI explains a sweep, seen in a real (headless) browser: the sweep and its
 * trials are found by search-attribute filters, and a trial shows its summary, its activity's
 * summary and current details that follow its epochs while it trains.
 */

jest.setTimeout(10 * 60_000);

const chromiumPath = process.env.SWEEPS_CHROMIUM ?? '/usr/bin/chromium';
// Screenshots are for people to look at; they stay out of the repository (and of the test's state).
const screenshots = mkdtempSync(join(tmpdir(), 'sweeps-ui-screenshots-'));

let stack: UserStack;
let browser: Browser;
let page: Page;
let sweep: SweepResult;

const ui = (path: string) => `http://127.0.0.1:${stack.ports.ui}/namespaces/default${path}`;
const listUrl = (query: string) => ui(`/workflows?query=${encodeURIComponent(query)}`);

/**
 * Summaries and details are markdown, which the UI renders in sandboxed frames of their own: wait
 * until one of the page's frames shows text matching `pattern`, and return that text. (Current
 * details say "epoch 3 of 400": the renderer would typeset "3/400" as a fraction.)
 */
async function frameText(pattern: RegExp, timeoutMs = 60_000): Promise<string> {
  let seen: string[] = [];
  try {
    return await waitFor(
      `a frame of the page showing ${pattern}`,
      async () => {
        seen = await Promise.all(
          page.frames().map((f) =>
            f
              .locator('body')
              .innerText({ timeout: 1000 })
              .catch(() => ''),
          ),
        );
        return seen.find((text) => pattern.test(text));
      },
      timeoutMs,
    );
  } catch (err) {
    throw new Error(
      `${(err as Error).message}; the frames showed:\n${seen
        .filter(Boolean)
        .map((t) => t.slice(0, 300))
        .join('\n---\n')}`,
      { cause: err },
    );
  }
}

async function screenshot(name: string): Promise<void> {
  const path = join(screenshots, `${name}.png`);
  await page.screenshot({ path });
  process.stdout.write(`screenshot: ${path}\n`);
}

beforeAll(async () => {
  if (!existsSync(chromiumPath)) throw new Error(`no browser at ${chromiumPath}: apt-get install -y chromium (or set SWEEPS_CHROMIUM)`);
  stack = await startUserStack('sweeps-ui-');
  const file = join(stack.home, 'ui-tiny.yaml');
  writeFileSync(file, tinyPipeline('ui-tiny', '    matrix: { pooling: [last, mean], seed: [1] }'));
  const run = await runCli(['sweep', file, '--no-worker', '--json'], stack.env);
  if (run.code !== 0) throw new Error(`the sweep failed:\n${run.stderr}`);
  sweep = json(run);
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
});

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
});

describe('the Temporal UI of the embedded server', () => {
  it('finds the sweep by SweepKind and Pipeline', async () => {
    await page.goto(listUrl('SweepKind="sweep" AND Pipeline="ui-tiny"'));
    // A single-page app: the rows arrive after the page has loaded.
    await page.getByRole('link', { name: sweep.sweepId, exact: true }).waitFor({ timeout: 60_000 });
    await screenshot('sweeps');
  });

  it('finds one of its trials by Variant, and only that one', async () => {
    const mean = `${sweep.sweepId}/trial-gru_mean-h8-s1`;
    await page.goto(listUrl(`SweepKind="trial" AND Variant="mean" AND Pipeline="ui-tiny"`));
    await page.getByRole('link', { name: mean, exact: true }).waitFor({ timeout: 60_000 });
    expect(await page.getByText(`${sweep.sweepId}/trial-gru_last-h8-s1`).count()).toBe(0);
    await screenshot('trials-variant-mean');
  });

  it("shows a trial's summary, its parent, and the summary of its training activity", async () => {
    const mean = `${sweep.sweepId}/trial-gru_mean-h8-s1`;
    await page.goto(ui(`/workflows/${encodeURIComponent(mean)}`));
    await page.getByText('train pooling=mean seed=1').first().waitFor({ timeout: 60_000 });
    await page.getByText(sweep.sweepId, { exact: true }).first().waitFor();
    await page.getByText('User Metadata').first().click();
    await frameText(/^ui-tiny · trial pooling=mean seed=1$/);
    expect(await frameText(/Parameters: pooling=/)).toContain(`Sweep ${sweep.sweepId}, step train, trial gru_mean-h8-s1.`);
    // Finished: the current details (answered by the worker) say so, with the epochs it ran.
    await frameText(/done · epoch 1 of 1/);
    await screenshot('trial-user-metadata');
  });

  it("shows a running trial's current details: its epoch and validation accuracy", async () => {
    const file = join(stack.home, 'ui-long.yaml');
    writeFileSync(
      file,
      tinyPipeline('ui-long', '    matrix: { pooling: [mean], seed: [1] }', {
        limit: 1000,
        trainWith: 'epochs: 400, early_stop_patience: 400, hidden: 32, valid_batches: 1, backend: wasm, engine: tfjs',
      }),
    );
    const { sweepId } = json<{ sweepId: string }>(await runCli(['sweep', file, '--detach', '--json'], stack.env));
    const trial = `${sweepId}/trial-gru_mean-h32-s1`;
    try {
      await waitFor('the trial to start training', async () => {
        const details = await stack.client.workflow.getHandle(trial).query<{ currentDetails: string }>('__temporal_workflow_metadata');
        return /epoch [1-9]\d* of 400/.test(details.currentDetails) ? true : undefined;
      });
      await page.goto(ui(`/workflows/${encodeURIComponent(trial)}`));
      await page.getByText('User Metadata').first().click();
      const current = await frameText(/running · epoch \d+ of 400/);
      expect(current).toMatch(/valid accuracy \d\.\d{4} \(best \d\.\d{4}\)/);
      await screenshot('trial-current-details');
      // They follow the training: a reload (what the UI's "R" does) shows a later epoch.
      const epochOf = (text: string) => Number(/epoch (\d+) of 400/.exec(text)![1]);
      await waitFor('a later epoch after a reload', async () => {
        await page.reload();
        await page.getByText('User Metadata').first().click();
        return epochOf(await frameText(/running · epoch \d+ of 400/)) > epochOf(current) ? true : undefined;
      });
    } finally {
      await runCli(['cancel', sweepId], stack.env);
    }
  });
});
