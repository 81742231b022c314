"""PyTorch's training step on the benchmark's batches, one CPU thread: the baseline of bench/train-step.ts.

The same model (nn.GRU(3, 64) -> pooling over time -> nn.Linear(64, 20)), loss
(nn.CrossEntropyLoss), optimizer (torch.optim.Adam, lr 1e-3, weight_decay 1e-5: L2 added to the
gradient) and batches as the TypeScript engines, read from the files train-step.ts writes:

    python bench/torch_step.py <spec.json> [--only <scenario id>]   (prints one JSON object on stdout)

Without --only it runs the scenarios not marked long; with it, that one scenario alone (so the
process's max RSS is that scenario's).

Timed per step: zero_grad, forward, backward through time, Adam, loss.item() — what one of our
training steps does. Timed per evaluation pass, under torch.no_grad(): forward, loss.item() and
the count of correct argmaxes — what our evaluation does. Input tensors are made before timing,
as ours are made by the caller.
"""
import json
import resource
import sys
import time

import numpy as np
import torch
from torch import nn

torch.set_num_threads(1)
torch.set_num_interop_threads(1)


class Classifier(nn.Module):
    def __init__(self, inputs: int, hidden: int, classes: int, pooling: str):
        super().__init__()
        self.rnn = nn.GRU(inputs, hidden, batch_first=True)
        self.linear = nn.Linear(hidden, classes)
        self.pooling = pooling

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)  # [B, T, H], running over the padding as our engines do
        T = out.shape[1]
        if self.pooling == "last":
            pooled = out[:, -1]
        elif self.pooling == "mean":
            pooled = out.mean(1)
        else:
            valid = (torch.arange(T)[None, :] < lengths[:, None]).unsqueeze(-1)  # [B, T, 1]
            if self.pooling == "last-valid":
                pooled = out[torch.arange(out.shape[0]), lengths - 1]
            elif self.pooling == "mean-valid":
                pooled = (out * valid).sum(1) / lengths[:, None]
            elif self.pooling == "max":
                pooled = out.masked_fill(~valid, float("-inf")).max(1).values
            else:
                raise ValueError(f"unknown pooling {self.pooling}")
        return self.linear(pooled)


def load_batches(blob: bytes, batches: list) -> list:
    out = []
    for b in batches:
        B, T, F = b["size"], b["steps"], b["features"]
        x = np.frombuffer(blob, dtype=np.float32, count=B * T * F, offset=b["x"]).reshape(B, T, F)
        lengths = np.frombuffer(blob, dtype=np.int32, count=B, offset=b["lengths"])
        labels = np.frombuffer(blob, dtype=np.int32, count=B, offset=b["labels"])
        out.append((torch.from_numpy(x.copy()), torch.from_numpy(lengths.astype(np.int64)), torch.from_numpy(labels.astype(np.int64))))
    return out


def main() -> None:
    spec = json.load(open(sys.argv[1]))
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    # CPU time (as the TypeScript rows measure by default) or wall time, as the spec says.
    clock = time.process_time if spec.get("clock", "wall") == "cpu" else time.perf_counter
    blob = open(spec["bin"], "rb").read()
    torch.manual_seed(spec.get("seed", 1))
    results = {}
    for sc in spec["scenarios"]:
        if (sc["id"] != only) if only is not None else sc.get("long", False):
            continue
        model = Classifier(spec["features"], spec["hidden"], spec["classes"], spec["pooling"])
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
        loss_fn = nn.CrossEntropyLoss()

        def step(batch) -> float:
            x, lengths, labels = batch
            opt.zero_grad()
            loss = loss_fn(model(x, lengths), labels)
            loss.backward()
            opt.step()
            return loss.item()

        def evaluate(batch) -> None:
            x, lengths, labels = batch
            with torch.no_grad():
                logits = model(x, lengths)
                loss_fn(logits, labels).item()
                (logits.argmax(1) == labels).sum().item()

        warmup = load_batches(blob, sc["warmup"])
        timed = load_batches(blob, sc["timed"])
        for fn, key in ((step, sc["id"]), (evaluate, sc["id"] + ":eval")):
            for b in warmup:
                fn(b)
            times = []
            for b in timed:
                t0 = clock()
                fn(b)
                times.append((clock() - t0) * 1000)
            results[key] = times
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "times": results, "maxRssMB": rss_mb}))


if __name__ == "__main__":
    main()
