import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { tableFromIPC, type Table } from 'apache-arrow';
import { DatasetFormatError, clip, parseNumber, sortLabels, type ReadDataset, type SequenceRecord } from './types';

/**
 * A long-format table: one row per timestep, with a sequence id, a time index, feature columns,
 * the label and optionally a group, as CSV (a header row, comma-separated, read line by line) or
 * Parquet (through parquet-wasm, a maintained reader, into Arrow). Rows of one sequence must be
 * contiguous and in increasing time, so that a sequence is complete when the next one starts.
 */
export interface LongTableColumns {
  id: string;
  time: string;
  label: string;
  group?: string | undefined;
  /** Feature columns in model order; default: every other column. */
  features?: string[] | undefined;
}

type Cell = string | number | bigint | null | undefined;

/** Collects rows into sequences, checking each one as it comes. */
class Assembler {
  readonly sequences: SequenceRecord[] = [];
  private readonly done = new Map<string, string>();
  private current: { id: string; first: string; label: string; group: string; lastTime: number; values: number[]; length: number } | undefined;

  constructor(
    private readonly file: string,
    private readonly features: number,
  ) {}

  add(where: string, id: string, time: number, label: string, group: string, values: ArrayLike<number>): void {
    if (id === '') throw new DatasetFormatError(`${where}: the sequence id is empty; every row needs one`);
    if (label === '') throw new DatasetFormatError(`${where}: the label is empty; every row needs one`);
    let cur = this.current;
    if (cur === undefined || cur.id !== id) {
      if (cur !== undefined) this.finish();
      const earlier = this.done.get(id);
      if (earlier !== undefined) {
        throw new DatasetFormatError(
          `${where}: sequence id "${clip(id, 30)}" appears again (its rows started at ${earlier}); a duplicate id, or rows not grouped: sort the table by id, then time`,
        );
      }
      cur = this.current = { id, first: where, label, group, lastTime: -Infinity, values: [], length: 0 };
    }
    if (!(time > cur.lastTime)) {
      throw new DatasetFormatError(
        `${where}: time ${time} of sequence "${clip(id, 30)}" does not increase (previous ${cur.lastTime}); time must be strictly increasing within a sequence: sort by id, then time, and drop duplicates`,
      );
    }
    if (label !== cur.label)
      throw new DatasetFormatError(
        `${where}: sequence "${clip(id, 30)}" changes label from "${clip(cur.label, 30)}" to "${clip(label, 30)}"; a sequence has one label`,
      );
    if (group !== cur.group)
      throw new DatasetFormatError(
        `${where}: sequence "${clip(id, 30)}" changes group from "${clip(cur.group, 30)}" to "${clip(group, 30)}"; a sequence belongs to one group`,
      );
    cur.lastTime = time;
    for (let f = 0; f < this.features; f++) cur.values.push(values[f]!);
    cur.length += 1;
  }

  finish(): void {
    const cur = this.current;
    if (cur === undefined) return;
    this.done.set(cur.id, cur.first);
    this.sequences.push({ source: `${this.file} id ${cur.id}`, group: cur.group, label: cur.label, values: Float32Array.from(cur.values), length: cur.length });
    this.current = undefined;
  }
}

function resolveColumns(
  available: string[],
  columns: LongTableColumns,
  file: string,
): { id: number; time: number; label: number; group: number | undefined; features: number[]; featureNames: string[] } {
  const index = (name: string, role: string): number => {
    const i = available.indexOf(name);
    if (i < 0)
      throw new DatasetFormatError(
        `${file}: no column "${clip(name, 40)}" (named as the ${role} column); the table has: ${available.map((a) => clip(a, 30)).join(', ')}`,
      );
    return i;
  };
  const id = index(columns.id, 'id');
  const time = index(columns.time, 'time');
  const label = index(columns.label, 'label');
  const group = columns.group === undefined ? undefined : index(columns.group, 'group');
  const used = new Set([id, time, label, ...(group === undefined ? [] : [group])]);
  const featureNames = columns.features ?? available.filter((_, i) => !used.has(i));
  if (featureNames.length === 0) throw new DatasetFormatError(`${file}: no feature columns (every column is the id, time, label or group)`);
  const features = featureNames.map((f) => index(f, 'feature'));
  for (const f of features)
    if (used.has(f)) throw new DatasetFormatError(`${file}: column "${available[f]}" is named both as a feature and as the id, time, label or group`);
  return { id, time, label, group, features, featureNames };
}

function text(cell: Cell): string {
  return cell === null || cell === undefined ? '' : String(cell).trim();
}

function number(cell: Cell, where: string, column: string): number {
  if (cell === null || cell === undefined || cell === '')
    throw new DatasetFormatError(`${where}, column "${column}": the value is missing; fill it or drop the row`);
  const v = typeof cell === 'number' ? (Number.isFinite(cell) ? cell : undefined) : typeof cell === 'bigint' ? Number(cell) : parseNumber(cell.trim());
  if (v === undefined) throw new DatasetFormatError(`${where}, column "${column}": expected a number, found "${clip(String(cell), 30)}"`);
  return v;
}

function result(assembler: Assembler, file: string, featureNames: string[]): ReadDataset {
  assembler.finish();
  if (assembler.sequences.length === 0) throw new DatasetFormatError(`${file}: no data rows below the header`);
  return { sequences: assembler.sequences, features: featureNames.length, featureNames, classNames: sortLabels(assembler.sequences.map((s) => s.label)) };
}

/** Splits one CSV line: commas, fields optionally in double quotes ("" inside quotes is a quote). */
export function splitCsvLine(line: string, where: string): string[] {
  const out: string[] = [];
  let i = 0;
  for (;;) {
    if (line[i] === '"') {
      let value = '';
      i += 1;
      for (;;) {
        const q = line.indexOf('"', i);
        if (q < 0) throw new DatasetFormatError(`${where}: a quoted field is not closed (fields cannot span lines)`);
        value += line.slice(i, q);
        if (line[q + 1] === '"') {
          value += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      out.push(value);
      if (i < line.length && line[i] !== ',') throw new DatasetFormatError(`${where}: text after a closing quote`);
    } else {
      const c = line.indexOf(',', i);
      out.push(line.slice(i, c < 0 ? line.length : c));
      i = c < 0 ? line.length : c;
    }
    if (i >= line.length) return out;
    i += 1; // the comma
    if (i === line.length) {
      out.push('');
      return out;
    }
  }
}

export async function readLongCsv(path: string, display: string, columns: LongTableColumns): Promise<ReadDataset> {
  const lines = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
  let lineNo = 0;
  let header: string[] | undefined;
  let cols: ReturnType<typeof resolveColumns> | undefined;
  let assembler: Assembler | undefined;
  let values = new Float64Array(0);
  for await (const raw of lines) {
    lineNo += 1;
    const line = lineNo === 1 ? raw.replace(/^\uFEFF/, '') : raw;
    if (line.trim() === '') continue;
    const where = `${display} line ${lineNo}`;
    const fields = splitCsvLine(line, where);
    if (header === undefined) {
      header = fields.map((f) => f.trim());
      if (header.every((h) => parseNumber(h) !== undefined)) {
        throw new DatasetFormatError(`${where}: the first line holds only numbers; the table needs a header row naming its columns`);
      }
      const dup = header.find((h, i) => header!.indexOf(h) !== i);
      if (dup !== undefined) throw new DatasetFormatError(`${where}: column "${clip(dup, 30)}" appears twice in the header`);
      cols = resolveColumns(header, columns, display);
      assembler = new Assembler(display, cols.features.length);
      values = new Float64Array(cols.features.length);
      continue;
    }
    if (fields.length !== header.length) {
      throw new DatasetFormatError(`${where}: ${fields.length} fields, but the header has ${header.length} columns`);
    }
    const c = cols!;
    for (let f = 0; f < c.features.length; f++) values[f] = number(fields[c.features[f]!], where, c.featureNames[f]!);
    assembler!.add(
      where,
      text(fields[c.id]),
      number(fields[c.time], where, columns.time),
      text(fields[c.label]),
      c.group === undefined ? '' : text(fields[c.group]),
      values,
    );
  }
  if (header === undefined) throw new DatasetFormatError(`${display}: the file is empty; it needs a header row and data rows`);
  return result(assembler!, display, cols!.featureNames);
}

/** parquet-wasm's Node build (CommonJS, WebAssembly inside), loaded when a Parquet file is read. */
function parquetToArrow(bytes: Uint8Array): Table {
  const parquet = require('parquet-wasm') as typeof import('parquet-wasm');
  return tableFromIPC(parquet.readParquet(bytes).intoIPCStream());
}

export async function readLongParquet(path: string, display: string, columns: LongTableColumns): Promise<ReadDataset> {
  let table: Table;
  try {
    table = parquetToArrow(await readFile(path));
  } catch (err) {
    throw new DatasetFormatError(`${display}: not a readable Parquet file (${clip(err instanceof Error ? err.message : String(err), 120)})`);
  }
  const names = table.schema.fields.map((f) => f.name);
  const cols = resolveColumns(names, columns, display);
  const get = (i: number): { toArray(): ArrayLike<Cell> } => table.getChildAt(i)! as unknown as { toArray(): ArrayLike<Cell> };
  const column = (i: number): ArrayLike<Cell> => get(i).toArray();
  const ids = column(cols.id);
  const times = column(cols.time);
  const labels = column(cols.label);
  const groups = cols.group === undefined ? undefined : column(cols.group);
  const feats = cols.features.map(column);
  // Null masks: toArray() of a numeric column gives 0 for a null, so nulls are checked apart.
  const nullable = [cols.time, ...cols.features].map((i) => table.getChildAt(i)!);
  const assembler = new Assembler(display, cols.features.length);
  const values = new Float64Array(cols.features.length);
  for (let r = 0; r < table.numRows; r++) {
    const where = `${display} row ${r + 1}`;
    for (const [k, col] of nullable.entries()) {
      if (col.nullCount > 0 && !col.isValid(r)) {
        const name = k === 0 ? columns.time : cols.featureNames[k - 1]!;
        throw new DatasetFormatError(`${where}, column "${name}": the value is missing (null); fill it or drop the row`);
      }
    }
    for (let f = 0; f < feats.length; f++) values[f] = number(feats[f]![r], where, cols.featureNames[f]!);
    assembler.add(where, text(ids[r]), number(times[r], where, columns.time), text(labels[r]), groups === undefined ? '' : text(groups[r]), values);
  }
  return result(assembler, display, cols.featureNames);
}
