import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { trackTrial, type TrialTracking } from '../../activities/tracking';
import { crc32c, trialEventFile } from '../../tracking/tensorboard';
import type { EpochMetrics } from '../../activities/types';
import { removeDir, tempDir, testDeps } from '../data/helpers';
import { runPython, testWith } from './tools';

const withTensorboard = testWith('tensorboard');

/**
 * Reads an event file with TensorBoard's own code: its record reader (which checks both CRCs of
 * every record and raises on a mismatch) and the EventAccumulator its dashboards are built on.
 */
const READ_EVENTS = `
import json, sys
from google.protobuf import json_format
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.tensorflow_stub import errors, pywrap_tensorflow
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

path = sys.argv[1]
reader = pywrap_tensorflow.PyRecordReader_New(path)
events = []
while True:
    try:
        reader.GetNext()
    except errors.OutOfRangeError:
        break
    events.append(event_pb2.Event.FromString(reader.record()))

acc = EventAccumulator(path, size_guidance={"scalars": 0, "tensors": 0})
acc.Reload()
tags = acc.Tags()
out = {
    "records": len(events),
    "file_version": events[0].file_version,
    "scalars": {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]},
    "texts": {t: [e.tensor_proto.string_val[0].decode() for e in acc.Tensors(t)] for t in tags["tensors"] if not t.startswith("_hparams_")},
}
content = acc.PluginTagToContent("hparams")
if "_hparams_/session_start_info" in content:
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    out["hparams"] = json_format.MessageToDict(start)["hparams"]
    out["group"] = start.group_name
if "_hparams_/session_end_info" in content:
    out["status"] = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_end_info"]).session_end_info.status
print(json.dumps(out))
`;

interface ReadBack {
  records: number;
  file_version: string;
  scalars: Record<string, Array<[number, number]>>;
  texts: Record<string, string[]>;
  hparams?: Record<string, unknown>;
  group?: string;
  status?: number;
}

const epochs: EpochMetrics[] = [1, 2, 3].map((epoch) => ({
  epoch,
  train_loss: 1 / epoch,
  valid_loss: 1.5 / epoch,
  valid_acc: 0.5 + epoch / 10,
  lr: 0.001,
  seconds: 4 + epoch,
}));

let root: string;
beforeAll(() => {
  root = tempDir('tensorboard');
});
afterAll(() => removeDir(root));

test('CRC-32C matches the standard check value', () => {
  // The CRC-32C (Castagnoli) check value of the ASCII digits 1…9.
  expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
});

withTensorboard("a trial's event file reads back with TensorBoard's own reader: scalars per epoch, settings, hparams", () => {
  const file = join(root, 'events.out.tfevents.1700000000.test');
  writeFileSync(file, trialEventFile(epochs, { pooling: 'mean', seed: 3, hidden: 64, stopped: false }, 'gru_mean-h64-s3', 'a = 1\n', 1_700_000_100));
  const back = runPython<ReadBack>(READ_EVENTS, [file]);
  // file version, hparams start, settings text, 3 epochs, hparams end.
  expect(back.records).toBe(7);
  expect(back.file_version).toBe('brain.Event:2');
  expect(Object.keys(back.scalars).sort()).toEqual(['epoch_seconds', 'lr', 'train_loss', 'valid_acc', 'valid_loss']);
  expect(back.scalars.valid_acc!.map(([step]) => step)).toEqual([1, 2, 3]);
  back.scalars.valid_acc!.forEach(([, value], i) => expect(value).toBeCloseTo(epochs[i]!.valid_acc, 6)); // stored as float32
  back.scalars.valid_loss!.forEach(([, value], i) => expect(value).toBeCloseTo(epochs[i]!.valid_loss, 6));
  expect(back.texts.settings).toEqual(['    a = 1']);
  expect(back.hparams).toEqual({ pooling: 'mean', seed: 3, hidden: 64, stopped: false });
  expect(back.group).toBe('gru_mean-h64-s3');
  expect(back.status).toBe(1); // STATUS_SUCCESS
});

withTensorboard("a damaged event file fails TensorBoard's CRC check (so the check above is real)", () => {
  const file = join(root, 'events.out.tfevents.1700000001.damaged');
  const bytes = trialEventFile(epochs, { seed: 1 }, 'g', '', 1_700_000_100);
  bytes[bytes.length - 10] = bytes[bytes.length - 10]! ^ 0xff; // inside the last record's data
  writeFileSync(file, bytes);
  expect(() => runPython(READ_EVENTS, [file])).toThrow(/DataLossError|crc32/);
});

withTensorboard('the trial tracker writes a live event file per epoch and, at the end, settings.toml and the final event file', async () => {
  const deps = testDeps(join(root, 'store'));
  const identity = { type: 'train', version: 1, params: { pooling: 'last', seed: 2, train_batches: undefined }, inputs: { padding: 'padding/abc' } };
  // No MLflow configured: TensorBoard and TOML still work.
  const tracker = trackTrial({ sweepId: 'sweep-p-00000000', step: 'train', trial: 'gru_last-h64-s2', identity }, deps, deps.logger, undefined);
  for (const m of epochs) tracker.epoch(m);
  const dir = join(root, 'artifact');
  const record: TrialTracking = await tracker.finish({ best: epochs[2]!, epochs, stoppedEarly: false, backend: 'cpu' }, dir);

  expect(record).toMatchObject({ settings: 'settings.toml', tensorboard: 'tensorboard', problems: [] });
  expect(record.mlflow).toBeUndefined();
  expect(record.environment).toMatchObject({ backend: 'cpu', node: process.version });

  const live = readdirSync(record.liveTensorboard!);
  expect(live).toHaveLength(1);
  expect(record.liveTensorboard).toBe(join(deps.store.root, 'work', 'tensorboard', 'sweep-p-00000000', 'gru_last-h64-s2'));
  const liveBack = runPython<ReadBack>(READ_EVENTS, [join(record.liveTensorboard!, live[0]!)]);
  expect(liveBack.scalars.valid_loss!.map(([step]) => step)).toEqual([1, 2, 3]);
  expect(liveBack.hparams).toEqual({ pooling: 'last', seed: 2 });

  const [final] = readdirSync(join(dir, 'tensorboard'));
  const finalBack = runPython<ReadBack>(READ_EVENTS, [join(dir, 'tensorboard', final!)]);
  expect(finalBack.scalars.train_loss!.map(([step]) => step)).toEqual([1, 2, 3]);
  expect(finalBack.texts.settings![0]).toContain('trial = "gru_last-h64-s2"');

  // settings.toml read by Python's own TOML parser.
  const toml = runPython<Record<string, Record<string, unknown>>>('import json, sys, tomllib; print(json.dumps(tomllib.load(open(sys.argv[1], "rb"))))', [
    join(dir, 'settings.toml'),
  ]);
  expect(toml.trial).toMatchObject({
    sweep: 'sweep-p-00000000',
    step: 'train',
    trial: 'gru_last-h64-s2',
    workflow_id: 'sweep-p-00000000/trial-gru_last-h64-s2',
  });
  expect(toml.params).toEqual({ pooling: 'last', seed: 2 });
  expect(toml.inputs).toEqual({ padding: 'padding/abc' });
  expect(toml.result).toMatchObject({ best_epoch: 3, epochs_run: 3, stopped_early: false });
  expect(toml.environment).toMatchObject({ backend: 'cpu', node: process.version });
  expect(readFileSync(join(dir, 'settings.toml'), 'utf8')).toMatch(/^# Settings of trial gru_last-h64-s2/);
});
