#!/usr/bin/env python3
"""Optuna as the baseline tuner of `npm run bench:tune` (issue 15, item 6).

Optuna's TPESampler + SuccessiveHalvingPruner, through the ask-and-tell interface, drive a
trainer that speaks the project's one-trial JSON protocol over stdin/stdout, under a fixed budget
of training epochs. The driver prints, per search seed, the best validation accuracy reached
against epochs spent, and writes the same as JSON (temp file, then rename) for the side-by-side
table.

The trial protocol (one process per trial):
  stdin, first line   {"trial": id, "seed": int, "params": {...}, "from_epoch": int,
                       "to_epoch": int, "resume_from": checkpoint-or-null}
  stdout, per epoch   {"event": "epoch", "epoch": e, "metrics": {"valid_acc": ..., ...},
                       "checkpoint": ref-or-null}
  stdin, per epoch    {"continue": true|false}   (false: stop after that epoch's checkpoint)
  stdout, at the end  {"event": "done", "epoch": e, "checkpoint": ref-or-null, "stopped_early": bool}
Anything else the trainer prints goes to stderr. The project's trainer is dist/bench/tune-trial.js
(bench/tune-protocol.ts has the protocol's details); `npm run bench:tune` runs this driver with it. `serve-synthetic` is a stand-in trainer with
learning curves shaped like the gestures model's, for trying the driver without training.

Usage:
  python bench/optuna_tune.py run --trainer "node dist/bench/tune-trial.js --padded <padded.arrow>" --seeds 1,2,3 \
      --epoch-budget 300 --max-epochs 30 --out results/optuna-tune.json
  python bench/optuna_tune.py run --synthetic --seeds 1,2,3 --epoch-budget 300
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
from typing import Any

# The tuning problem, declared as the project's search spaces are (search/space.ts).
DEFAULT_SPACE: dict[str, dict[str, Any]] = {
    "lr": {"type": "loguniform", "low": 1e-4, "high": 3e-2},
    "weight_decay": {"type": "loguniform", "low": 1e-6, "high": 1e-2},
    "hidden": {"type": "int", "low": 16, "high": 128, "step": 16},
    "dropout": {"type": "uniform", "low": 0.0, "high": 0.5},
    "pooling": {"type": "choice", "values": ["last", "mean", "max"]},
}


class BenchError(Exception):
    """A problem the user can fix; printed without a traceback."""


def suggest(trial: Any, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name in sorted(space):
        spec = space[name]
        kind = spec.get("type")
        if kind == "uniform":
            params[name] = trial.suggest_float(name, spec["low"], spec["high"])
        elif kind == "loguniform":
            params[name] = trial.suggest_float(name, spec["low"], spec["high"], log=True)
        elif kind == "int":
            params[name] = trial.suggest_int(name, spec["low"], spec["high"], step=spec.get("step", 1))
        elif kind == "choice":
            params[name] = trial.suggest_categorical(name, spec["values"])
        else:
            raise BenchError(f"space.{name}.type: expected uniform, loguniform, int or choice, got {kind!r}")
    return params


class TrialProcess:
    """One trial of the trainer, spoken to through the JSON protocol."""

    def __init__(self, command: list[str], request: dict[str, Any]) -> None:
        self.request = request
        try:
            self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        except OSError as err:
            raise BenchError(f"cannot start the trainer {shlex.join(command)}: {err.strerror}") from err
        self._send(request)

    def _send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError as err:
            code = self.proc.wait()
            raise BenchError(f"trial {self.request['trial']}: the trainer stopped reading its input (exit code {code})") from err

    def next_event(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            raise BenchError(f"trial {self.request['trial']}: the trainer exited (code {code}) without finishing; see its stderr above")
        try:
            event = json.loads(line)
        except json.JSONDecodeError as err:
            raise BenchError(f"trial {self.request['trial']}: the trainer printed a line that is not JSON ({err.msg}): {line[:200]!r}") from err
        if not isinstance(event, dict) or event.get("event") not in ("epoch", "done"):
            raise BenchError(f"trial {self.request['trial']}: expected an event 'epoch' or 'done', got {line[:200]!r}")
        return event

    def reply(self, go_on: bool) -> None:
        self._send({"continue": go_on})

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        if self.proc.wait() != 0:
            raise BenchError(f"trial {self.request['trial']}: the trainer exited with code {self.proc.returncode}")


def tune(seed: int, args: argparse.Namespace, space: dict[str, dict[str, Any]], command: list[str]) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=args.n_startup),
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=args.min_resource, reduction_factor=args.reduction_factor),
    )
    spent = 0
    best = -math.inf
    curve: list[list[float]] = []
    trials: list[dict[str, Any]] = []
    while spent < args.epoch_budget:
        trial = study.ask()
        params = suggest(trial, space)
        request = {"trial": f"optuna-s{seed}-t{trial.number}", "seed": args.train_seed, "params": params, "from_epoch": 0, "to_epoch": args.max_epochs, "resume_from": None}
        proc = TrialProcess(command, request)
        last = math.nan
        state = optuna.trial.TrialState.COMPLETE
        epochs = 0
        while True:
            event = proc.next_event()
            if event["event"] == "done":
                break
            epochs = int(event["epoch"])
            metrics = event.get("metrics", {})
            if args.metric not in metrics:
                raise BenchError(f"trial {request['trial']} epoch {epochs}: no metric {args.metric!r} (it reported: {', '.join(metrics) or 'none'})")
            last = float(metrics[args.metric])
            spent += 1
            if last > best:
                best = last
            curve.append([spent, best])
            trial.report(last, epochs)
            stop = trial.should_prune() or spent >= args.epoch_budget
            if stop and epochs < args.max_epochs:
                state = optuna.trial.TrialState.PRUNED
            proc.reply(not stop)
            if stop:
                # The trainer still sends "done" after the stop, with the checkpoint it kept.
                continue
        proc.close()
        if state == optuna.trial.TrialState.PRUNED:
            study.tell(trial, state=state)
        else:
            study.tell(trial, last)
        trials.append({"number": trial.number, "params": params, "epochs": epochs, "last": last, "state": state.name.lower()})
    return {"seed": seed, "epochs_spent": spent, "best": best, "curve": curve, "trials": trials}


def run(args: argparse.Namespace) -> None:
    try:
        import optuna
    except ImportError as err:
        raise BenchError("optuna is not installed: pip install optuna==5.0.0 (e.g. in ~/.cache/durable-sweeps/optuna-venv)") from err
    space = DEFAULT_SPACE
    if args.space:
        try:
            with open(args.space, encoding="utf-8") as f:
                space = json.load(f)
        except (OSError, json.JSONDecodeError) as err:
            raise BenchError(f"{args.space}: cannot read the search space: {err}") from err
    if args.synthetic:
        command = [sys.executable, os.path.abspath(__file__), "serve-synthetic"]
    elif args.trainer:
        command = shlex.split(args.trainer)
    else:
        raise BenchError("give --trainer <command speaking the trial protocol> or --synthetic")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError as err:
        raise BenchError(f"--seeds: expected integers separated by commas, got {args.seeds!r}") from err

    results = [tune(seed, args, space, command) for seed in seeds]
    print(f"optuna {optuna.__version__}: TPESampler(n_startup_trials={args.n_startup}) + SuccessiveHalvingPruner(min_resource={args.min_resource}, reduction_factor={args.reduction_factor}), budget {args.epoch_budget} epochs")
    print(f"{'seed':>6} {'best ' + args.metric:>16} {'epochs to best':>15} {'trials':>7} {'pruned':>7}")
    for r in results:
        to_best = next((e for e, b in r["curve"] if b >= r["best"]), None)
        pruned = sum(t["state"] == "pruned" for t in r["trials"])
        print(f"{r['seed']:>6} {r['best']:>16.4f} {to_best:>15} {len(r['trials']):>7} {pruned:>7}")
    if args.out:
        out = {"driver": "optuna", "optuna_version": optuna.__version__, "metric": args.metric, "epoch_budget": args.epoch_budget, "space": space, "seeds": results}
        folder = os.path.dirname(os.path.abspath(args.out))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".optuna-tune-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
        os.replace(tmp, args.out)
        print(f"wrote {args.out}")


def unit(*key: Any) -> float:
    """A deterministic draw in [0, 1) named by its key."""
    digest = hashlib.sha256(json.dumps(key).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def synthetic_curve(params: dict[str, Any], seed: int, epoch: int) -> float:
    """Validation accuracy after `epoch` epochs: a ceiling set by the parameters, reached at a speed set by lr."""
    lr = math.log10(params["lr"]) - math.log10(3e-3)
    wd = math.log10(params["weight_decay"]) + 4
    hidden = (params["hidden"] - 96) / 64
    dropout = (params["dropout"] - 0.2) / 0.4
    pooling = {"last": 0.0, "mean": 0.03, "max": 0.01}.get(params["pooling"], 0.0)
    ceiling = 0.96 + pooling - 0.08 * lr * lr - 0.01 * wd * wd - 0.02 * hidden * hidden - 0.02 * dropout * dropout
    speed = 0.25 * 10 ** max(-1.0, min(1.0, lr))
    noise = 0.004 * (unit(seed, json.dumps(params, sort_keys=True), epoch) - 0.5)
    return max(0.0, min(1.0, 0.05 + (ceiling - 0.05) * (1 - math.exp(-speed * epoch)) + noise))


def serve_synthetic() -> None:
    """A stand-in trainer that speaks the trial protocol (no training, no files)."""
    request = json.loads(sys.stdin.readline())
    epoch = int(request.get("from_epoch", 0))
    to = int(request["to_epoch"])
    while epoch < to:
        epoch += 1
        acc = synthetic_curve(request["params"], int(request.get("seed", 0)), epoch)
        print(json.dumps({"event": "epoch", "epoch": epoch, "metrics": {"valid_acc": acc}, "checkpoint": None}), flush=True)
        reply = sys.stdin.readline()
        if not reply or not json.loads(reply).get("continue", False):
            break
    print(json.dumps({"event": "done", "epoch": epoch, "checkpoint": None}), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="tune with Optuna under an epoch budget")
    p.add_argument("--trainer", help="command that runs one trial through the JSON protocol")
    p.add_argument("--synthetic", action="store_true", help="use the built-in stand-in trainer")
    p.add_argument("--space", help="search space as JSON (search/space.ts shapes); default: the issue's five parameters")
    p.add_argument("--seeds", default="1,2,3", help="search seeds, comma-separated (default 1,2,3)")
    p.add_argument("--epoch-budget", type=int, default=300, help="training epochs per search, all trials together")
    p.add_argument("--max-epochs", type=int, default=30, help="epochs of a trial trained to the end")
    p.add_argument("--min-resource", type=int, default=1)
    p.add_argument("--reduction-factor", type=int, default=3)
    p.add_argument("--n-startup", type=int, default=10, help="TPESampler's n_startup_trials: random trials before the model (Optuna's default 10)")
    p.add_argument("--metric", default="valid_acc")
    p.add_argument("--train-seed", type=int, default=1, help="training seed of every trial (the search seed varies)")
    p.add_argument("--out", help="write the results here as JSON")
    sub.add_parser("serve-synthetic", help="be the stand-in trainer (used by run --synthetic)")
    args = parser.parse_args()
    try:
        if args.command == "serve-synthetic":
            serve_synthetic()
        else:
            run(args)
    except BenchError as err:
        print(f"optuna_tune: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
