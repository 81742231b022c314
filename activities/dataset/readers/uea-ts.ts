import { createReadStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { createInterface } from 'node:readline';
import { DatasetFormatError, clip, parseNumber, type ReadDataset, type SequenceRecord } from './types';

/**
 * UEA/UCR `.ts` files, the time-series classification archive's own format
 * (https://www.timeseriesclassification.com): `#`/`%` comments, a header of `@key value` lines
 * (`@problemName`, `@timeStamps`, `@missing`, `@univariate`, `@dimensions`, `@equalLength`,
 * `@seriesLength`, `@classLabel true <labels…>`), then `@data` and one case per line: each
 * dimension's comma-separated values, dimensions separated by `:`, the class label last.
 * Read line by line (a stream), checked as it goes; the first problem stops with file and line.
 */

export interface UeaFile {
  problemName: string;
  dimensions: number;
  classLabels: string[];
  sequences: SequenceRecord[];
}

const KNOWN_KEYS = new Set([
  'problemname',
  'timestamps',
  'missing',
  'univariate',
  'dimensions',
  'equallength',
  'serieslength',
  'classlabel',
  'targetlabel',
  'data',
]);

function bool(value: string | undefined, key: string, where: string): boolean {
  const v = (value ?? '').toLowerCase();
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new DatasetFormatError(`${where}: @${key} must be true or false, found "${clip(value ?? '')}"`);
}

export async function readUeaFile(path: string, display: string, part?: 'train' | 'test'): Promise<UeaFile> {
  const header = new Map<string, string>();
  let classLabels: string[] | undefined;
  let dimensions: number | undefined;
  let seriesLength: number | undefined;
  let equalLength = false;
  let missingDeclared = false;
  let inData = false;
  const sequences: SequenceRecord[] = [];
  let lineNo = 0;
  const lines = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
  for await (const raw of lines) {
    lineNo += 1;
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith('%')) continue;
    const where = `${display} line ${lineNo}`;
    if (!inData) {
      if (!line.startsWith('@')) {
        throw new DatasetFormatError(
          `${where}: data before the header's @data line; a .ts file starts with @problemName … @classLabel … @data (is the header missing?)`,
        );
      }
      const [rawKey = '', ...rest] = line.slice(1).split(/\s+/);
      const key = rawKey.toLowerCase();
      if (!KNOWN_KEYS.has(key))
        throw new DatasetFormatError(
          `${where}: unknown header line @${clip(rawKey, 30)}; expected one of @problemName, @timeStamps, @missing, @univariate, @dimensions, @equalLength, @seriesLength, @classLabel, @data`,
        );
      if (header.has(key)) throw new DatasetFormatError(`${where}: @${rawKey} is declared twice`);
      header.set(key, rest.join(' '));
      if (key === 'timestamps' && bool(rest[0], rawKey, where)) {
        throw new DatasetFormatError(`${where}: @timeStamps true is not supported; write the values without (time,value) pairs`);
      }
      if (key === 'missing') missingDeclared = bool(rest[0], rawKey, where);
      if (key === 'equallength') equalLength = bool(rest[0], rawKey, where);
      if (key === 'dimensions' || key === 'serieslength') {
        const n = parseNumber(rest[0] ?? '');
        if (n === undefined || !Number.isInteger(n) || n < 1)
          throw new DatasetFormatError(`${where}: @${rawKey} must be a positive integer, found "${clip(rest.join(' '))}"`);
        if (key === 'dimensions') dimensions = n;
        else seriesLength = n;
      }
      if (key === 'targetlabel' && bool(rest[0], rawKey, where)) {
        throw new DatasetFormatError(`${where}: @targetLabel true is a regression dataset; this step needs class labels (@classLabel true …)`);
      }
      if (key === 'classlabel') {
        if (!bool(rest[0], rawKey, where)) {
          throw new DatasetFormatError(`${where}: @classLabel false: the file has no class labels; a classification study needs @classLabel true <labels…>`);
        }
        classLabels = rest.slice(1);
        if (classLabels.length < 2) throw new DatasetFormatError(`${where}: @classLabel true lists ${classLabels.length} label(s); list at least two`);
        if (new Set(classLabels).size !== classLabels.length) throw new DatasetFormatError(`${where}: @classLabel lists a label twice`);
      }
      if (key === 'data') {
        if (classLabels === undefined) {
          throw new DatasetFormatError(`${where}: @data before @classLabel; declare the classes first (@classLabel true <labels…>)`);
        }
        if (header.get('univariate')?.toLowerCase() === 'true') {
          if (dimensions !== undefined && dimensions !== 1) throw new DatasetFormatError(`${where}: @univariate true but @dimensions ${dimensions}`);
          dimensions = 1;
        }
        inData = true;
      }
      continue;
    }
    if (line.startsWith('@')) throw new DatasetFormatError(`${where}: header line after @data; move it above @data`);
    const fields = line.split(':');
    const label = fields.pop()!.trim();
    const dims = dimensions ?? fields.length;
    if (fields.length !== dims) {
      throw new DatasetFormatError(
        `${where}: ${fields.length} dimension(s) before the label, but ${dimensions === undefined ? 'the first case has' : '@dimensions says'} ${dims}; each case is <dim 1>:…:<dim ${dims}>:<label>`,
      );
    }
    dimensions = dims;
    if (!classLabels!.includes(label)) {
      throw new DatasetFormatError(`${where}: class label "${clip(label, 30)}" is not in @classLabel (${classLabels!.join(' ')}); fix the label or the header`);
    }
    let length = -1;
    const columns: number[][] = [];
    for (let d = 0; d < dims; d++) {
      const text = fields[d]!.trim();
      if (text === '') throw new DatasetFormatError(`${where}: dimension ${d + 1} is empty (an empty series); every dimension needs at least one value`);
      const parts = text.split(',');
      const values: number[] = new Array(parts.length);
      for (let i = 0; i < parts.length; i++) {
        const p = parts[i]!.trim();
        if (p === '?' || p.toLowerCase() === 'nan') {
          throw new DatasetFormatError(
            missingDeclared
              ? `${where}: dimension ${d + 1}, value ${i + 1} is missing ("${p}"); @missing true is declared, but the model cannot train on gaps: fill or drop the missing values first`
              : `${where}: dimension ${d + 1}, value ${i + 1} is missing ("${p}") although @missing is not true; fill the value or fix the header`,
          );
        }
        const v = parseNumber(p);
        if (v === undefined) throw new DatasetFormatError(`${where}: dimension ${d + 1}, value ${i + 1}: expected a number, found "${clip(p, 30)}"`);
        values[i] = v;
      }
      if (length >= 0 && values.length !== length) {
        throw new DatasetFormatError(
          `${where}: dimension ${d + 1} has ${values.length} values but dimension 1 has ${length} (ragged dimensions); all dimensions of a case need the same length`,
        );
      }
      length = values.length;
      columns.push(values);
    }
    if (equalLength && seriesLength !== undefined && length !== seriesLength) {
      throw new DatasetFormatError(`${where}: ${length} timesteps, but the header says @equalLength true @seriesLength ${seriesLength}`);
    }
    // Stored timestep after timestep: [t][d].
    const flat = new Float32Array(length * dims);
    for (let d = 0; d < dims; d++) {
      const col = columns[d]!;
      for (let t = 0; t < length; t++) flat[t * dims + d] = col[t]!;
    }
    const source = `${display}:${lineNo}`;
    sequences.push(part === undefined ? { source, group: '', label, values: flat, length } : { source, group: '', label, values: flat, length, part });
  }
  if (!inData) throw new DatasetFormatError(`${display}: no @data line${lineNo === 0 ? ' (the file is empty)' : ''}; is this a UEA/UCR .ts file?`);
  if (sequences.length === 0) throw new DatasetFormatError(`${display}: @data is followed by no cases`);
  return { problemName: header.get('problemname') ?? '', dimensions: dimensions!, classLabels: classLabels!, sequences };
}

/** Every file under `dir` (not following links), relative paths with `/`. */
async function walk(dir: string, depth = 8): Promise<string[]> {
  const out: string[] = [];
  const visit = async (current: string, left: number): Promise<void> => {
    for (const e of await readdir(current, { withFileTypes: true })) {
      if (e.name.startsWith('.') || e.name === '__MACOSX') continue;
      const full = join(current, e.name);
      if (e.isDirectory() && left > 0) await visit(full, left - 1);
      else if (e.isFile()) out.push(relative(dir, full).split(sep).join('/'));
    }
  };
  await visit(dir, depth);
  return out.sort();
}

/**
 * `<name>_TRAIN.ts` and `<name>_TEST.ts` found anywhere under `rootDir` (an unpacked archive: a
 * folder of one dataset, the archive's own tree, or a wheel that ships some), read as the
 * archive's train and test parts. Both must declare the same dimensions and classes.
 */
export async function readUeaDataset(rootDir: string, name: string): Promise<ReadDataset> {
  const files = await walk(rootDir);
  const find = (suffix: string): string => {
    const wanted = `${name}${suffix}`;
    const hits = files.filter((f) => f === wanted || f.endsWith(`/${wanted}`));
    if (hits.length === 0) {
      const available = files.filter((f) => f.endsWith('_TRAIN.ts')).map((f) => f.slice(f.lastIndexOf('/') + 1, -'_TRAIN.ts'.length));
      throw new DatasetFormatError(
        `no file ${wanted} in the data${available.length > 0 ? ` (UEA datasets there: ${available.slice(0, 20).join(', ')}${available.length > 20 ? ', …' : ''})` : ' (it holds no *_TRAIN.ts file)'}; check the dataset name`,
      );
    }
    if (hits.length > 1)
      throw new DatasetFormatError(`${wanted} is there ${hits.length} times (${hits.join(', ')}); narrow the dataset's root to one of their folders`);
    return hits[0]!;
  };
  const trainPath = find('_TRAIN.ts');
  const testPath = find('_TEST.ts');
  const train = await readUeaFile(join(rootDir, trainPath), trainPath, 'train');
  const test = await readUeaFile(join(rootDir, testPath), testPath, 'test');
  if (test.dimensions !== train.dimensions) {
    throw new DatasetFormatError(
      `${testPath}: ${test.dimensions} dimension(s), but ${trainPath} has ${train.dimensions}; both parts must describe the same dataset`,
    );
  }
  if (test.classLabels.join(' ') !== train.classLabels.join(' ')) {
    throw new DatasetFormatError(
      `${testPath}: @classLabel ${test.classLabels.join(' ')} differs from ${trainPath}'s (${train.classLabels.join(' ')}); both parts need the same classes in the same order`,
    );
  }
  return {
    sequences: [...train.sequences, ...test.sequences],
    features: train.dimensions,
    featureNames: Array.from({ length: train.dimensions }, (_, d) => `dim_${d + 1}`),
    classNames: train.classLabels,
  };
}
