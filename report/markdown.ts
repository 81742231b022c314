/** report.md: the same sections as report.html, plots as SVG files next to it. */
import type { ReportDocument } from './document';
import { sectionsOf, subject, type Table, type TableCell } from './tables';

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

/**
 * Seeds until sure, in words: the rule, the seeds used and why the sweep stopped, then each
 * comparison's anytime-valid interval. Empty for a sweep without `until:`.
 */
export function untilParagraphs(doc: ReportDocument): Array<{ title: string; lines: string[] }> {
  const points = (x: number | null) => (x === null ? '∞' : `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(2)}`);
  return (doc.until ?? []).map((u) => ({
    title: `Seeds until sure (${u.step})`,
    lines: [
      `Rule: ${u.rule}.`,
      `Seeds used: ${u.seeds.length} (${u.seeds.join(', ')}) in ${u.rounds} round${u.rounds === 1 ? '' : 's'}.`,
      `Why it ${u.stop ? 'stopped' : 'did not stop'}: ${u.reason.replace(/^(stopped|continues): /, '')}.`,
      ...u.comparisons.map(
        (c) =>
          `${c.variant} − ${c.baseline}: mean ${points(c.mean)} points over ${c.n} seed pairs, ${+(c.confidence * 100).toFixed(3)}% anytime-valid interval ` +
          `[${c.low === null ? '−∞' : points(c.low)}, ${points(c.high)}]: ${decisionText[c.decision]}.`,
      ),
      'The fixed-n intervals further down assume the number of seeds was fixed in advance; this sweep chose it from the data, so the interval above is the one that holds.',
    ],
  }));
}

const decisionText = {
  different: 'decided, the interval excludes 0',
  'within-margin': 'decided, the interval is narrower than the margin (no difference that matters)',
  'max-seeds': 'undecided at max_seeds',
  continue: 'undecided',
} as const;

export function renderMarkdown(doc: ReportDocument): string {
  const lines: string[] = [`# Sweep report: ${doc.sweepId}`, ''];
  const temporal = doc.temporal?.sweepUrl ? ` · [Temporal UI](${doc.temporal.sweepUrl})` : '';
  lines.push(`Pipeline \`${doc.pipeline}\`, ${subject(doc)}; generated ${doc.generatedAt}${temporal}`, '');
  lines.push('## Verdict', '');
  const [first, ...rest] = verdictParagraphs(doc);
  lines.push(first ?? '');
  for (const p of rest) lines.push(`- ${p}`);
  lines.push('');
  for (const u of untilParagraphs(doc)) lines.push(`## ${u.title}`, '', ...u.lines.flatMap((l) => [l, '']));
  for (const section of sectionsOf(doc)) {
    if (section.kind === 'table') lines.push(...table(section.table));
    else lines.push(`## ${section.figure.title}`, '', `![${section.figure.title}](${plotFile(section.figure.plot)})`, '', `*${section.figure.caption}*`, '');
  }
  return lines.join('\n');
}
