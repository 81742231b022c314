/**
 * Child process entry: reads `{ name: Vega-Lite spec }` as JSON on stdin, writes `{ name: SVG }`
 * as JSON on stdout. A plain Node process can import() the ES-module-only vega and vega-lite;
 * the callers (the report activity, jest tests) are CommonJS and cannot.
 */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function main(): Promise<void> {
  const specs = JSON.parse(await readStdin()) as Record<string, unknown>;
  const vega = await import('vega');
  const vegaLite = await import('vega-lite');
  const svgs: Record<string, string> = {};
  for (const [name, spec] of Object.entries(specs)) {
    // renderer 'none': no canvas needed; toSVG renders the scenegraph itself (text included).
    const view = new vega.View(vega.parse(vegaLite.compile(spec as Parameters<typeof vegaLite.compile>[0]).spec), { renderer: 'none' });
    try {
      svgs[name] = await view.toSVG();
    } finally {
      view.finalize();
    }
  }
  process.stdout.write(JSON.stringify(svgs));
}

main().catch((err: Error) => {
  process.stderr.write(`${err.stack ?? err.message}\n`);
  process.exit(1);
});
