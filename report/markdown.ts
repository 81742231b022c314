/** report.md: the same sections as report.html, plots as SVG files next to it. */
import type { ReportDocument } from './document';
import { sectionsOf, type Table, type TableCell } from './tables';

/** Where report.md finds a plot, relative to itself. */
export const plotFile = (plot: string) => `plots/${plot}.svg`;

// A cell must stay on one line and must not close the table's columns.
const escapeCell = (text: string) => text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
const cellText = (cell: TableCell) => (cell.href ? `[${escapeCell(cell.text)}](${cell.href})` : escapeCell(cell.text));

function table(t: Table): string[] {
  const lines = [`## ${t.title}`, ''];
  if (t.note) lines.push(t.note, '');
  lines.push(`| ${t.columns.map((c) => escapeCell(c.title)).join(' | ')} |`);
  lines.push(`|${t.columns.map((c) => (c.numeric ? '---:' : '---')).join('|')}|`);
  for (const row of t.rows) lines.push(`| ${row.map(cellText).join(' | ')} |`);
  lines.push('');
  return lines;
}

export function verdictParagraphs(doc: ReportDocument): string[] {
  // Several comparisons: the ranking first, then one paragraph each (doc.verdict is them joined).
  return doc.comparisons.length > 1 ? [doc.ranking, ...doc.comparisons.map((c) => c.verdict)] : [doc.verdict];
}

export function renderMarkdown(doc: ReportDocument): string {
  const lines: string[] = [`# Sweep report: ${doc.sweepId}`, ''];
  const temporal = doc.temporal?.sweepUrl ? ` · [Temporal UI](${doc.temporal.sweepUrl})` : '';
  lines.push(`Pipeline \`${doc.pipeline}\`, variants of \`${doc.compare}\` compared with \`${doc.baseline}\`; generated ${doc.generatedAt}${temporal}`, '');
  lines.push('## Verdict', '');
  const [first, ...rest] = verdictParagraphs(doc);
  lines.push(first ?? '');
  for (const p of rest) lines.push(`- ${p}`);
  lines.push('');
  for (const section of sectionsOf(doc)) {
    if (section.kind === 'table') lines.push(...table(section.table));
    else lines.push(`## ${section.figure.title}`, '', `![${section.figure.title}](${plotFile(section.figure.plot)})`, '', `*${section.figure.caption}*`, '');
  }
  return lines.join('\n');
}
