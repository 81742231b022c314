/**
 * report.html: one self-contained file (inline CSS and SVG, no script, nothing fetched), so that it
 * opens offline, from an artifact store, a CI artifact or an MLflow run alike.
 */
import type { ReportDocument } from './document';
import { untilParagraphs, verdictParagraphs } from './markdown';
import { sectionsOf, subject, type Figure, type PlotName, type Table } from './tables';

const escapeHtml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');

const slug = (s: string) =>
  s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');

/**
 * Vega numbers the ids of clip paths and gradients from 1 in every SVG it renders; inline in one
 * page, two plots would then share ids and one would clip by the other's shapes. Prefix them.
 */
export function scopeSvgIds(svg: string, prefix: string): string {
  return svg
    .replace(/\bid="([^"]+)"/g, (_, id: string) => `id="${prefix}-${id}"`)
    .replace(/url\(#([^)]+)\)/g, (_, id: string) => `url(#${prefix}-${id})`)
    .replace(/(xlink:)?href="#([^"]+)"/g, (_, xlink: string | undefined, id: string) => `${xlink ?? ''}href="#${prefix}-${id}"`);
}

function table(t: Table): string {
  const head = t.columns.map((c) => `<th${c.numeric ? ' class="num"' : ''}>${escapeHtml(c.title)}</th>`).join('');
  const rows = t.rows
    .map(
      (row) =>
        `<tr>${row
          .map((cell, i) => {
            const text = escapeHtml(cell.text);
            const content = cell.href ? `<a href="${escapeHtml(cell.href)}" target="_blank" rel="noopener">${text}</a>` : text;
            return `<td${t.columns[i]?.numeric ? ' class="num"' : ''}>${content}</td>`;
          })
          .join('')}</tr>`,
    )
    .join('\n');
  return `<section id="${t.id}">
<h2>${escapeHtml(t.title)}</h2>
${t.note ? `<p class="note">${escapeHtml(t.note)}</p>\n` : ''}<div class="scroll"><table data-table="${t.id}">
<thead><tr>${head}</tr></thead>
<tbody>
${rows}
</tbody>
</table></div>
</section>`;
}

function figure(f: Figure, svgs: Partial<Record<PlotName, string>>): string {
  const svg = svgs[f.plot];
  const body = svg ? scopeSvgIds(svg, `plot-${slug(f.plot)}`) : '<p class="note">(plot not rendered)</p>';
  return `<section id="plot-${slug(f.plot)}">
<h2>${escapeHtml(f.title)}</h2>
<figure data-plot="${f.plot}">
${body}
<figcaption>${escapeHtml(f.caption)}</figcaption>
</figure>
</section>`;
}

const CSS = `
:root { color-scheme: light; --fg: #1d2329; --muted: #5b6670; --line: #d9dee3; --accent: #0072B2; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--fg);
  margin: 0 auto; padding: 24px 32px 64px; max-width: 1180px; }
h1 { font-size: 1.6rem; margin: 0 0 4px; word-break: break-all; }
h2 { font-size: 1.15rem; margin: 32px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
.meta, .note, figcaption { color: var(--muted); font-size: 0.9rem; }
.verdict { border-left: 4px solid var(--accent); background: #f2f7fb; padding: 10px 16px; margin: 16px 0; }
.verdict p { margin: 6px 0; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.88rem; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap; }
td:last-child { white-space: normal; }
th { background: #f6f8fa; font-weight: 600; white-space: normal; vertical-align: bottom; }
.num { text-align: right; }
figure { margin: 8px 0; }
figure svg { max-width: 100%; height: auto; }
a { color: var(--accent); }
@media print { body { padding: 0; } .scroll { overflow: visible; } }
`;

export function renderHtml(doc: ReportDocument, svgs: Partial<Record<PlotName, string>>): string {
  const temporal = doc.temporal?.sweepUrl ? ` · <a href="${escapeHtml(doc.temporal.sweepUrl)}" target="_blank" rel="noopener">Temporal UI</a>` : '';
  const mlflow = doc.tracking.mlflow?.url ? ` · <a href="${escapeHtml(doc.tracking.mlflow.url)}" target="_blank" rel="noopener">MLflow run</a>` : '';
  const body = sectionsOf(doc)
    .map((s) => (s.kind === 'table' ? table(s.table) : figure(s.figure, svgs)))
    .join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="durable-sweeps ${escapeHtml(doc.schema)}">
<title>Sweep report: ${escapeHtml(doc.sweepId)}</title>
<style>${CSS}</style>
</head>
<body>
<header>
<h1>Sweep report: ${escapeHtml(doc.sweepId)}</h1>
<p class="meta">Pipeline <code>${escapeHtml(doc.pipeline)}</code>, ${escapeHtml(subject(doc))}; generated ${escapeHtml(doc.generatedAt)}${temporal}${mlflow}</p>
</header>
<section id="verdict">
<h2>Verdict</h2>
<div class="verdict">
${verdictParagraphs(doc)
  .map((p) => `<p>${escapeHtml(p)}</p>`)
  .join('\n')}
</div>
</section>
${untilParagraphs(doc)
  .map((u) => `<section class="until">\n<h2>${escapeHtml(u.title)}</h2>\n${u.lines.map((l) => `<p>${escapeHtml(l)}</p>`).join('\n')}\n</section>`)
  .join('\n')}
${body}
</body>
</html>
`;
}
