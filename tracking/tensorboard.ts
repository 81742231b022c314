/**
 * TensorBoard event files, written directly: TFRecord framing (length, masked CRC-32C of the
 * length, data, masked CRC-32C of the data) around serialized `tensorboard.Event` protobufs. Our
 * own writer works on every TensorFlow.js backend (tfjs-node's summary writer exists only where
 * the native addon built) and in the worker process, where no tensors live.
 */
import { hostname } from 'node:os';
import type { EpochMetrics } from '../ml/trainer';

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32C (Castagnoli), the checksum of TFRecord files. */
export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of data) c = CRC32C_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord masks its CRCs so that a CRC of data that itself holds CRCs stays well distributed. */
function maskedCrc32c(data: Uint8Array): number {
  const crc = crc32c(data);
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

export function tfRecord(data: Uint8Array): Buffer {
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(data.length));
  const head = Buffer.alloc(4);
  head.writeUInt32LE(maskedCrc32c(length));
  const foot = Buffer.alloc(4);
  foot.writeUInt32LE(maskedCrc32c(data));
  return Buffer.concat([length, head, Buffer.from(data), foot]);
}

/** Just enough of the protobuf wire format for the few messages TensorBoard reads. */
class Proto {
  private readonly parts: Buffer[] = [];

  private varint(value: number): void {
    const bytes: number[] = [];
    let v = value;
    while (v >= 0x80) {
      bytes.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    bytes.push(v);
    this.parts.push(Buffer.from(bytes));
  }
  private key(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }
  uint(field: number, value: number): this {
    this.key(field, 0);
    this.varint(value);
    return this;
  }
  double(field: number, value: number): this {
    this.key(field, 1);
    const b = Buffer.alloc(8);
    b.writeDoubleLE(value);
    this.parts.push(b);
    return this;
  }
  float(field: number, value: number): this {
    this.key(field, 5);
    const b = Buffer.alloc(4);
    b.writeFloatLE(value);
    this.parts.push(b);
    return this;
  }
  bytes(field: number, value: Uint8Array | string): this {
    const b = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
    this.key(field, 2);
    this.varint(b.length);
    this.parts.push(b);
    return this;
  }
  message(field: number, value: Proto): this {
    return this.bytes(field, value.finish());
  }
  finish(): Buffer {
    return Buffer.concat(this.parts);
  }
}

// Field numbers from tensorboard/compat/proto/{event,summary,tensor,tensor_shape}.proto and
// tensorboard/plugins/hparams/plugin_data.proto.
const DT_FLOAT = 1;
const DT_STRING = 7;
const HPARAMS_STATUS_SUCCESS = 1;

const event = (wallTime: number, step: number) => new Proto().double(1, wallTime).uint(2, step);

export function fileVersionEvent(wallTime: number): Buffer {
  return new Proto().double(1, wallTime).bytes(3, 'brain.Event:2').finish();
}

export function scalarsEvent(wallTime: number, step: number, values: Record<string, number>): Buffer {
  const summary = new Proto();
  for (const [tag, value] of Object.entries(values)) summary.message(1, new Proto().bytes(1, tag).float(2, value));
  return event(wallTime, step).message(5, summary).finish();
}

/** A text summary, shown in TensorBoard's Text tab (plugin "text", a scalar string tensor). */
export function textEvent(wallTime: number, step: number, tag: string, text: string): Buffer {
  const metadata = new Proto().message(1, new Proto().bytes(1, 'text'));
  const tensor = new Proto().uint(1, DT_STRING).message(2, new Proto()).bytes(8, text);
  const value = new Proto().bytes(1, tag).message(9, metadata).message(8, tensor);
  return event(wallTime, step).message(5, new Proto().message(1, value)).finish();
}

/** An hparams plugin summary: the plugin reads trials' parameters from these (HParams tab). */
function hparamsEvent(wallTime: number, tag: string, pluginData: Proto): Buffer {
  const metadata = new Proto().message(1, new Proto().bytes(1, 'hparams').message(2, pluginData));
  // The plugin's own writer attaches an empty float tensor of shape [0]; readers expect a tensor.
  const nullTensor = new Proto().uint(1, DT_FLOAT).message(2, new Proto().message(2, new Proto()));
  const value = new Proto().bytes(1, tag).message(9, metadata).message(8, nullTensor);
  return event(wallTime, 0).message(5, new Proto().message(1, value)).finish();
}

export function hparamsStartEvent(wallTime: number, hparams: Record<string, string | number | boolean>, group: string): Buffer {
  const start = new Proto();
  for (const [key, v] of Object.entries(hparams)) {
    const value = new Proto();
    if (typeof v === 'number') value.double(2, v);
    else if (typeof v === 'boolean') value.uint(4, v ? 1 : 0);
    else value.bytes(3, v);
    start.message(1, new Proto().bytes(1, key).message(2, value));
  }
  start.bytes(4, group).double(5, wallTime);
  return hparamsEvent(wallTime, '_hparams_/session_start_info', new Proto().message(3, start));
}

export function hparamsEndEvent(wallTime: number): Buffer {
  const end = new Proto().uint(1, HPARAMS_STATUS_SUCCESS).double(2, wallTime);
  return hparamsEvent(wallTime, '_hparams_/session_end_info', new Proto().message(4, end));
}

/** TensorBoard only reads files whose name contains "tfevents"; this is TensorFlow's own pattern. */
export function eventFileName(wallTime: number): string {
  return `events.out.tfevents.${Math.floor(wallTime)}.${hostname()}.${process.pid}`;
}

/** The per-epoch scalars, under the names metrics.json and MLflow use too. */
export function epochScalars(m: EpochMetrics): Record<string, number> {
  return { train_loss: m.train_loss, valid_loss: m.valid_loss, valid_acc: m.valid_acc, lr: m.lr, epoch_seconds: m.seconds };
}

/**
 * A whole trial as one event file: settings as text, the parameters for the HParams tab, and every
 * epoch's scalars. Wall times are reconstructed backwards from `endTime` with the epochs' own
 * durations, so TensorBoard's relative-time axis shows training time even for a resumed trial.
 */
export function trialEventFile(
  epochs: readonly EpochMetrics[],
  hparams: Record<string, string | number | boolean>,
  group: string,
  settingsToml: string,
  endTime: number,
): Buffer {
  const wall: number[] = [];
  let t = endTime;
  for (let i = epochs.length - 1; i >= 0; i--) {
    wall[i] = t;
    t -= epochs[i]!.seconds;
  }
  const records = [fileVersionEvent(t), hparamsStartEvent(t, hparams, group), textEvent(t, 0, 'settings', toMarkdownCode(settingsToml))];
  epochs.forEach((m, i) => records.push(scalarsEvent(wall[i]!, m.epoch, epochScalars(m))));
  records.push(hparamsEndEvent(endTime));
  return Buffer.concat(records.map(tfRecord));
}

// TensorBoard renders text summaries as markdown; indenting keeps the TOML verbatim.
const toMarkdownCode = (text: string) => text.trimEnd().replace(/^/gm, '    ');
