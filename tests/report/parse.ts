/** Reads the tables back out of report.md and report.html, to check that they show the same. */

export interface ParsedCell {
  text: string;
  href?: string;
}

export type ParsedTables = Map<string, ParsedCell[][]>;

/** Markdown tables by the `## title` above them; rows include the header row. */
export function markdownTables(md: string): ParsedTables {
  const tables: ParsedTables = new Map();
  let title = '';
  for (const line of md.split('\n')) {
    if (line.startsWith('## ')) title = line.slice(3).trim();
    if (!line.startsWith('|') || /^\|[-:|]+\|$/.test(line)) continue;
    const cells = line
      .slice(1, -1)
      .split(/(?<!\\)\|/)
      .map((raw) => raw.trim().replace(/\\\|/g, '|'))
      .map((raw): ParsedCell => {
        const link = /^\[(.*)\]\((.*)\)$/.exec(raw);
        return link ? { text: link[1]!, href: link[2]! } : { text: raw };
      });
    tables.set(title, [...(tables.get(title) ?? []), cells]);
  }
  return tables;
}

const unescapeHtml = (s: string) =>
  s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&');

/** HTML tables by the `<h2>` of their section; rows include the header row. */
export function htmlTables(html: string): ParsedTables {
  const tables: ParsedTables = new Map();
  for (const section of html.matchAll(/<section id="[^"]*">\s*<h2>([\s\S]*?)<\/h2>([\s\S]*?)<\/section>/g)) {
    const table = /<table[^>]*>([\s\S]*?)<\/table>/.exec(section[2]!);
    if (!table) continue;
    const rows = [...table[1]!.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((row) =>
      [...row[1]!.matchAll(/<t[dh][^>]*>([\s\S]*?)<\/t[dh]>/g)].map((cell): ParsedCell => {
        const link = /^<a href="([^"]*)"[^>]*>([\s\S]*)<\/a>$/.exec(cell[1]!);
        return link ? { text: unescapeHtml(link[2]!), href: unescapeHtml(link[1]!) } : { text: unescapeHtml(cell[1]!) };
      }),
    );
    tables.set(unescapeHtml(section[1]!), rows);
  }
  return tables;
}

/** The numbers a cell shows, with how many decimals each was shown with. */
export function shownNumbers(text: string): Array<{ value: number; decimals: number }> {
  return [...text.replace(/−/g, '-').matchAll(/[-+]?\d+(?:\.(\d+))?/g)].map((m) => ({ value: Number(m[0]), decimals: m[1]?.length ?? 0 }));
}

/**
 * True when `text` shows exactly `values`, each rounded to the decimals it is shown with
 * (percentages are given as percent values by the caller).
 */
export function showsNumbers(text: string, values: number[]): boolean {
  const shown = shownNumbers(text);
  return shown.length === values.length && shown.every((s, i) => Math.abs(s.value - values[i]!) <= 0.5 * 10 ** -s.decimals + 1e-9);
}
