import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DatasetFormatError, clip, parseNumber, type ReadDataset, type SequenceRecord } from './types';

/**
 * The SmartWatch Gestures layout: `<root>/Uxx/NN/MM.txt`, user folders, one folder per gesture
 * (numbered from 01), one file per repetition with six space-separated columns per timestep, of
 * which the last three (accelerometer x, y, z) are the features. Label = gesture number − 1.
 */
export const GESTURE_FEATURES = 3;
const COLUMNS = 6;

/**
 * Files that may sit beside the data without being data: the archive's own documentation and the
 * litter that archivers and desktops leave (macOS resource forks, Finder and Explorer metadata).
 */
const ROOT_EXTRAS = new Set(['info.txt', 'gestures.png', 'readme.txt', 'readme.md', 'license.txt']);
const LITTER = new Set(['__MACOSX', 'Thumbs.db', 'desktop.ini']);
function isLitter(name: string): boolean {
  return name.startsWith('.') || LITTER.has(name);
}

export interface SequenceFile {
  /** Relative to the dataset root, with `/`: `U01/01/01.txt`. */
  file: string;
  user: string;
  userNo: number;
  gesture: number;
  fileNo: number;
}

/**
 * Walks `<root>/Uxx/NN/MM.txt`. Anything unexpected where data should be is an error rather than
 * skipped: a stray folder usually means a different archive layout, and silently training on a
 * part of it would be worse than stopping.
 */
export async function listSequenceFiles(rootDir: string, rootName: string): Promise<SequenceFile[]> {
  let top: import('node:fs').Dirent[];
  try {
    top = await readdir(rootDir, { withFileTypes: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      let there = '';
      try {
        there = (await readdir(join(rootDir, '..'))).join(', ');
      } catch {
        // the parent's listing is only a hint
      }
      throw new DatasetFormatError(`the archive has no folder "${rootName}" (its top level holds: ${there || 'nothing'})`);
    }
    throw err;
  }
  const files: SequenceFile[] = [];
  for (const u of top) {
    if (isLitter(u.name)) continue;
    if (!u.isDirectory()) {
      if (ROOT_EXTRAS.has(u.name.toLowerCase())) continue;
      throw new DatasetFormatError(`${u.name}: unexpected file at the top of ${rootName}/, where user folders (U01, U02, …) are expected`);
    }
    const um = /^U(\d+)$/.exec(u.name);
    if (!um) throw new DatasetFormatError(`${u.name}/: unexpected folder name where a user folder (U01, U02, …) is expected`);
    const gestures = await readdir(join(rootDir, u.name), { withFileTypes: true });
    for (const g of gestures) {
      if (isLitter(g.name)) continue;
      const gm = /^(\d+)$/.exec(g.name);
      if (!g.isDirectory() || !gm || Number(gm[1]) < 1) {
        throw new DatasetFormatError(
          `${u.name}/${g.name}${g.isDirectory() ? '/' : ''}: unexpected ${g.isDirectory() ? 'folder' : 'file'} where a gesture folder (01, 02, …) is expected`,
        );
      }
      const entries = await readdir(join(rootDir, u.name, g.name), { withFileTypes: true });
      for (const f of entries) {
        if (isLitter(f.name)) continue;
        const fm = /^(\d+)\.txt$/.exec(f.name);
        if (!f.isFile() || !fm) {
          throw new DatasetFormatError(
            `${u.name}/${g.name}/${f.name}: unexpected ${f.isDirectory() ? 'folder' : 'file'} where a sequence file (01.txt, 02.txt, …) is expected`,
          );
        }
        files.push({ file: `${u.name}/${g.name}/${f.name}`, user: u.name, userNo: Number(um[1]), gesture: Number(gm[1]), fileNo: Number(fm[1]) });
      }
    }
  }
  if (files.length === 0) throw new DatasetFormatError(`${rootName}/ holds no sequence files`);
  checkGestureNumbers(files, rootName);
  // Numeric, not lexical: U2 before U10, 9.txt before 10.txt; the name breaks ties (01.txt vs 1.txt).
  files.sort((a, b) => a.userNo - b.userNo || a.gesture - b.gesture || a.fileNo - b.fileNo || cmp(a.file, b.file));
  return files;
}

/**
 * The class count is the highest gesture number, so gestures must be numbered 1..K without gaps:
 * one stray folder (`U03/99/`) would otherwise make a 99-class model with 79 empty classes.
 */
function checkGestureNumbers(files: readonly SequenceFile[], rootName: string): void {
  const folders = new Map<number, Set<string>>();
  for (const f of files) {
    const set = folders.get(f.gesture) ?? new Set<string>();
    set.add(f.file.slice(0, f.file.lastIndexOf('/') + 1));
    folders.set(f.gesture, set);
  }
  const numbers = [...folders.keys()].sort((a, b) => a - b);
  const missing: number[] = [];
  for (let g = 1, i = 0; i < numbers.length; g++) {
    if (numbers[i] === g) i += 1;
    else missing.push(g);
  }
  if (missing.length === 0) return;
  // The gestures past the first gap are the strays; name their folders.
  const firstGap = missing[0]!;
  const strays = numbers.filter((n) => n > firstGap).flatMap((n) => [...folders.get(n)!]);
  throw new DatasetFormatError(
    `${rootName}/: gesture folders are not numbered 1..${numbers.length} (gesture ${firstGap} is missing) and the labels would have gaps: ` +
      `remove or renumber ${strays.slice(0, 5).join(', ')}${strays.length > 5 ? ` and ${strays.length - 5} more` : ''}`,
  );
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Parses one file's text. Blank lines are skipped (a trailing newline is not an error). */
export function parseSequence(text: string, file: string): { values: Float32Array; length: number } {
  const lines = text.split('\n');
  const out: number[] = [];
  let rows = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    const fields = line.split(/\s+/);
    if (fields.length !== COLUMNS) {
      throw new DatasetFormatError(
        `${file} line ${i + 1}: expected ${COLUMNS} space-separated numbers, found ${fields.length} field${fields.length === 1 ? '' : 's'}: "${clip(line)}"`,
      );
    }
    for (let c = 0; c < COLUMNS; c++) {
      const v = parseNumber(fields[c]!);
      if (v === undefined) throw new DatasetFormatError(`${file} line ${i + 1}, field ${c + 1}: expected a number, found "${clip(fields[c]!)}"`);
      if (c >= COLUMNS - GESTURE_FEATURES) out.push(v);
    }
    rows += 1;
  }
  if (rows === 0) throw new DatasetFormatError(`${file}: empty file (no data rows)`);
  return { values: Float32Array.from(out), length: rows };
}

export async function readGestures(
  rootDir: string,
  rootName: string,
  signal?: AbortSignal,
  progress?: (done: number, total: number) => void,
): Promise<ReadDataset & { files: SequenceFile[] }> {
  const files = await listSequenceFiles(rootDir, rootName);
  const sequences: SequenceRecord[] = new Array(files.length);
  let next = 0;
  let done = 0;
  // A few reads in flight hide file-system latency (a network store) without opening thousands of fds.
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= files.length) return;
      signal?.throwIfAborted();
      const f = files[i]!;
      const parsed = parseSequence(await readFile(join(rootDir, f.file), 'utf8'), f.file);
      sequences[i] = { source: f.file, group: f.user, label: String(f.gesture), ...parsed };
      if (++done % 500 === 0) progress?.(done, files.length);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  progress?.(done, files.length);
  const classes = Math.max(...files.map((f) => f.gesture));
  return {
    files,
    sequences,
    features: GESTURE_FEATURES,
    featureNames: ['accel_x', 'accel_y', 'accel_z'],
    classNames: Array.from({ length: classes }, (_, i) => String(i + 1)),
  };
}
