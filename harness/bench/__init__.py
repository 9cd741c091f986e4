"""Per-epoch cost of every objective against the compute floor.

    python -m harness.bench [--dims 50,200,500,1000] [--epochs 3] [--methods all] [--device cpu]
        [--direct] [--json]

For each gradient objective and d: the median seconds per epoch (50k MNIST-halves pairs,
the paper's network, batch 2048, Adam) over `--epochs` timed epochs after one warm-up
epoch; the same for the *floor* — the same networks (decoders included) and batches with a
trivial loss, the cost no objective can avoid (for a method that penalises input gradients,
with one double backward through the encoders) — its steps taken in turn with the
objective's (on a GPU, its epochs); their ratio, with the range of the per-epoch ratios (how
far this machine's drift moves one run); peak memory.

The floor computes the encoders' full m × d outputs. At d above the last hidden width the
objectives take the outputs as factors instead (harness/lowrank.py) and skip the last layer's
m × h × d product, except where a decoder or an input-gradient score needs the outputs
themselves; there a ratio near or below 1 means the objective costs no more than that product.
`--direct` times the objectives on the m × d outputs at every d instead (the reference path),
to see what factoring saves where decompositions and products cost otherwise (a GPU).
"""
from __future__ import annotations

import argparse
import functools
import json
import platform
import resource
import statistics
import sys
import time

import torch

from harness.common import ConfigError, default_device, synchronize, whole_number
from harness.loop import batches, train_epoch
from harness.models import HIDDEN, PRECISIONS, TwoViewModel
from harness.profiles import get_profile
from harness.registry import get as get_method
from harness.registry import list_methods
from harness.suites.mnist_halves import load_data, to_device

FLOOR_PLAIN = "networks"
FLOOR_DOUBLE_BACKWARD = "networks + double backward"


def floor_objective(model, h1, h2, state, params, input_gradients: bool = False):
    """Touches every network the method trains, with a loss that costs nothing. With
    `input_gradients` (methods that penalise ∂score/∂h), it also penalises the input gradients
    of a trivial two-view score: the double backward through both encoders that any such
    penalty needs, whatever its score."""
    if input_gradients:
        h1, h2 = h1.detach().requires_grad_(True), h2.detach().requires_grad_(True)
    f1, f2 = model(h1, h2)
    z1, z2 = model.bn1(f1), model.bn2(f2)
    loss = z1.mean() + z2.mean()
    if input_gradients:
        grads = torch.autograd.grad((z1 * z2).sum(), (h1, h2), create_graph=True)
        loss = loss + sum(g.pow(2).mean() for g in grads)
    if hasattr(model, "dec1"):
        loss = loss + model.dec1(f1).mean() + model.dec2(f2).mean()
    if hasattr(model, "dec"):
        loss = loss + model.dec(f1).mean() + model.dec(f2).mean() + model.dec(f1 + f2).mean()
    return {"loss": loss}


def stepper(spec, objective, train, d: int, batch: int, device, precision: str = "fp32",
            overrides: dict | None = None, factored: bool = True):
    """A fresh model of the method's networks (seed 0), trained with `objective` (the method's
    default parameters, then `overrides`): an endless iterator whose every next() takes one
    step of the trial's loop (`train_epoch` on the next batch of a shuffled epoch, Adam)."""
    torch.manual_seed(0)
    p1, p2 = train[0].shape[1], train[1].shape[1]
    model = TwoViewModel.for_method(spec, p1, p2, d, precision=precision,
                                    factored=factored).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    state = spec.two_view.fresh_state(d, device)
    params = spec.params(overrides=overrides)
    n = train[0].shape[0]

    def loss(h1, h2):
        return objective(model, h1, h2, state, params)

    def steps():
        while True:
            for views in batches(train, torch.randperm(n, device=device), batch):
                train_epoch(optimizer, loss, [views])
                yield
    return steps()


def interleaved_epochs(steppers, epochs: int, steps_per_epoch: int, device) -> list[list[float]]:
    """Seconds per epoch of each stepper: one warm-up epoch each, then `epochs` epochs whose
    steps the steppers take in turn, so that an objective and its floor see the same drift of
    the machine's speed. On the CPU they alternate step by step (~0.1 s apart: whole epochs in
    turn, seconds apart, still put 0.7-1.4 on one run's per-epoch ratios on this shared VM);
    on a GPU epoch by epoch, since timing a step needs a device sync that would cost the
    asynchronous launches their overlap."""
    chunk = 1 if device.type == "cpu" else steps_per_epoch
    for step in steppers:
        for _ in range(steps_per_epoch):
            next(step)
    times = [[0.0] * epochs for _ in steppers]
    for epoch in range(epochs):
        for _ in range(steps_per_epoch // chunk):
            for seconds, step in zip(times, steppers):
                synchronize(device)
                start = time.perf_counter()
                for _ in range(chunk):
                    next(step)
                synchronize(device)
                seconds[epoch] += time.perf_counter() - start
    return times


def peak_memory_mb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS


def parse_overrides(items: list[str], methods: list[str], parser) -> dict:
    """--set KEY=VALUE items as {key: value}, each checked against the methods that take it."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not (sep and key):
            parser.error(f"--set {item!r}: expected KEY=VALUE, e.g. rho=0.05")
        overrides[key] = value
    unused = set(overrides) - {k for m in methods for k in get_method(m).defaults}
    if unused:
        parser.error(f"--set: no benchmarked method has the parameter(s) {sorted(unused)}")
    for method in methods:
        try:
            get_method(method).params(overrides=own_overrides(overrides, method))
        except ValueError as err:
            parser.error(str(err))
    return overrides


def own_overrides(overrides: dict, method: str) -> dict:
    return {k: v for k, v in overrides.items() if k in get_method(method).defaults}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", default="50,200,500,1000")
    parser.add_argument("--epochs", type=whole_number(1), default=3,
                        help="timed epochs (after 1 warm-up)")
    parser.add_argument("--methods", default="all")
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=whole_number(1), default=None,
                        help="torch threads (CPU; default: torch's)")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="the networks' arithmetic, objective and floor alike (default fp32)")
    parser.add_argument("--subset", type=int, default=None, metavar="N",
                        help="train on the first N pairs only (quick checks; figures use all 50k)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a parameter for every method that has it, instead of its default "
                             "(e.g. rho=0.05: SDCCA with running statistics); repeatable")
    parser.add_argument("--direct", action="store_true",
                        help="objectives on the m x d outputs at every d (no factors): the "
                             "reference path, to see what the factored one saves on a device")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = parser.parse_args(argv)
    batch = get_profile("paper").batch
    if args.subset is not None and args.subset < batch:
        parser.error(f"--subset {args.subset} is smaller than one batch ({batch})")
    try:
        names = list_methods() if args.methods == "all" else args.methods.split(",")
        methods = [m for m in names if get_method(m).two_view is not None
                   and get_method(m).two_view.objective is not None]
        dims = [int(d) for d in args.dims.split(",")]
        if min(dims) < 1 or max(dims) >= batch:
            parser.error(f"--dims {args.dims}: every d must lie in 1..{batch - 1} (batch {batch})")
    except KeyError as err:
        parser.error(err.args[0])
    except ValueError:
        parser.error(f"--dims {args.dims!r}: expected comma-separated integers, e.g. 50,1000")
    overrides = parse_overrides(args.set, methods, parser)
    try:
        device = default_device(args.device)
    except ConfigError as err:
        parser.error(str(err))
    if args.threads:
        torch.set_num_threads(args.threads)
    train = to_device(load_data("paper")["train"].head(args.subset), device)
    rows = measure_rows(args, dims, methods, overrides, train, batch, device)
    machine = (torch.cuda.get_device_name(0) if device.type == "cuda"
               else f"{platform.machine()} CPU, {torch.get_num_threads()} threads")
    outputs = "direct" if args.direct else f"factored where d > {HIDDEN[-1] + 1}"
    if args.json:
        print(json.dumps({"device": machine, "batch": batch, "epochs": args.epochs,
                          "precision": args.precision, "outputs": outputs, "rows": rows}))
    else:
        print(f"device: {machine}; batch {batch}; precision {args.precision}; objectives' "
              f"outputs {outputs}; median of {args.epochs} epochs after 1 warm-up")
    return 0


def measure_rows(args, dims, methods, overrides, train, batch, device) -> list[dict]:
    """One row per (d, method), each printed as it is measured, with progress on stderr."""
    rows, started, total = [], time.monotonic(), len(dims) * len(methods)
    for d in dims:
        for method in methods:
            spec, params = get_method(method), own_overrides(overrides, method)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            double_backward = spec.two_view.input_gradient_penalty
            floor = functools.partial(floor_objective, input_gradients=double_backward)
            obj, flo = interleaved_epochs(
                [stepper(spec, objective, train, d, batch, device, args.precision, params,
                         factored=not args.direct)
                 for objective in (spec.two_view.objective, floor)], args.epochs,
                train[0].shape[0] // batch, device)
            row = {"method": method, "d": d, "s_per_epoch": statistics.median(obj),
                   "params": params,
                   "floor_s_per_epoch": statistics.median(flo),
                   "peak_mem_mb": peak_memory_mb(device),
                   "floor": FLOOR_DOUBLE_BACKWARD if double_backward else FLOOR_PLAIN}
            row["ratio"] = row["s_per_epoch"] / row["floor_s_per_epoch"]
            # each epoch's objective time over its floor's, taken in turn with it: the spread
            # of these is what this machine's drift does to one run's ratio
            per_epoch = [o / f for o, f in zip(obj, flo)]
            row["ratio_range"] = [min(per_epoch), max(per_epoch)]
            rows.append(row)
            note = "   (floor with a double backward)" if double_backward else ""
            note += "".join(f"   {k}={v}" for k, v in row["params"].items())
            # with --json, as progress on stderr: a run cut short still shows its rows
            print(f"{method:<8} d={d:<5} {row['s_per_epoch']:8.3f} s/epoch   floor "
                  f"{row['floor_s_per_epoch']:7.3f}   ratio {row['ratio']:5.2f} "
                  f"({row['ratio_range'][0]:.2f}-{row['ratio_range'][1]:.2f} by epoch)   "
                  f"peak {row['peak_mem_mb']:8.0f} MB{note}",
                  file=sys.stderr if args.json else sys.stdout, flush=True)
            print(progress(len(rows), total, time.monotonic() - started), file=sys.stderr,
                  flush=True)
    return rows


def progress(done: int, total: int, elapsed_s: float) -> str:
    """'bench: 3 of 12 rows in 1m30s, ~4m30s left': the rest at the mean pace so far (rows at
    larger d take longer, so early on this underestimates)."""
    def clock(seconds: float) -> str:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    left = f", ~{clock(elapsed_s / done * (total - done))} left" if done < total else ""
    return f"bench: {done} of {total} rows in {clock(elapsed_s)}{left}"

