"""Retrain committed trials with the current code and compare their metrics (a change that
should not alter results, e.g. a faster objective, is checked this way).

    python -m harness.recheck tables/results/mnist_halves-quick/results.csv --d 1000 --seed 0
        [--methods dcca,sdcca] [--threads 1] [--json]

Each matching finished (non-search) row of the results.csv is rerun in-process with the same
method, d, seed, parameters (`param_*`), learning rate, epochs and precision, on `--threads`
torch threads (sweep trials run on one). Prints, per trial, the committed and the new
`corr_heldout`, their relative difference, and both training times (the committed one was
timed inside its sweep, under that sweep's contention). `--direct` retrains on the direct path
(no factored outputs at any d), the reference of the factored objectives.

`--against direct` compares the factored path with the direct one instead of with the
committed numbers: each trial is retrained twice with this code ("before" = direct). With
`--float64` the networks, data and objectives run in float64 (no bf16): float32 rounding,
amplified over a trial's steps, moves corr_heldout by ~1e-3 between two runs that differ only
in the order of their additions (BENCHMARKS.md), which hides whether two paths compute the
same thing; float64 does not. `--trace STEPS` shows why, step by step: it takes a trial's
first steps twice side by side (factored vs direct, or `--trace-pair threads`: the direct path
on 1 vs 2 threads) and prints the two runs' gradient and parameter differences after each.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import sys

import numpy as np
import pandas as pd
import torch

from harness import registry
from harness.common import whole_number
from harness.loop import batches
from harness.models import TwoViewModel
from harness.suites import get_suite

COMPARED = ("corr_heldout", "corr_refit", "corr_diag", "recog_acc")


def committed_trials(results: pd.DataFrame, d: int | None, seed: int | None,
                     methods: list[str] | None) -> pd.DataFrame:
    rows = results[(results.status == "ok") & (results.phase != "search")]
    if d is not None:
        rows = rows[rows.d == d]
    if seed is not None:
        rows = rows[rows.seed == seed]
    if methods:
        rows = rows[rows.method.isin(methods)]
    return rows


def config_of(row: pd.Series) -> dict:
    """The trial configuration that produced a results.csv row."""
    spec = registry.get(row.method)
    overrides = {}
    for key in spec.defaults:  # MethodSpec.params casts each value to its default's type
        value = row.get(f"param_{key}")
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            overrides[key] = value
    config = {"method": row.method, "d": int(row.d), "seed": int(row.seed),
              "profile": row.profile, "overrides": overrides, "lr": float(row.lr),
              "epochs": int(row.epochs), "precision": row.precision, "name": row["name"]}
    hidden = row.get("hidden")
    if isinstance(hidden, str) and hidden:  # e.g. "500,300"; a method's own network otherwise
        config["hidden"] = tuple(int(h) for h in hidden.split(","))
    return config


def run_config(row: pd.Series, float64: bool) -> dict:
    """`config_of(row)`, without bf16 autocast under --float64 (the default dtype rules)."""
    config = config_of(row)
    if float64:
        config["precision"] = "fp32"
    return config


def retrain(suite, config: dict, data, direct: bool = False):
    """One trial; with `direct`, no factored outputs at any d (the trial's `factored`)."""
    return suite.trial({**config, "factored": not direct}, data=data)


def in_float64(data: dict) -> dict:
    """The splits with float64 inputs (the networks follow torch's default dtype)."""
    return {name: dataclasses.replace(views, x1=views.x1.astype(np.float64),
                                      x2=views.x2.astype(np.float64))
            for name, views in data.items()}


def rel_diff(x: torch.Tensor, reference: torch.Tensor) -> float:
    return float((x - reference).norm() / reference.norm())


def trace_steps(suite, config: dict, data: dict, steps: int, pair: str) -> list[dict]:
    """The first `steps` Adam steps of a trial's configuration, taken twice side by side from
    the same weights and on the same batches: factored vs direct path (`pair` "paths") or the
    direct path on 1 vs 2 torch threads ("threads", the same algebra summed in another order).
    After each step: the relative difference of the two gradients and of the two parameter
    vectors, i.e. how fast a round-off difference grows in training."""
    cfg, spec, device, _ = suite.begin(dict(config))
    train = [torch.as_tensor(x, device=device) for x in (data["train"].x1, data["train"].x2)]
    torch.manual_seed(cfg["seed"])
    model = TwoViewModel.for_method(spec, train[0].shape[1], train[1].shape[1], cfg["d"],
                                    cfg["hidden"], cfg["precision"]).to(device)
    twins = [model, copy.deepcopy(model)]
    optimizers = [torch.optim.Adam(twin.parameters(), lr=cfg["lr"]) for twin in twins]
    states = [spec.two_view.fresh_state(cfg["d"], device) for _ in twins]
    # (factored?, threads) of each twin
    settings = [(True, None), (False, None)] if pair == "paths" else [(False, 1), (False, 2)]
    threads, rows = torch.get_num_threads(), []
    shuffle = torch.Generator().manual_seed(cfg["seed"])

    def epochs():  # reshuffled each epoch, as a trial does
        while True:
            yield from batches(train, torch.randperm(len(train[0]), generator=shuffle),
                               cfg["batch"])
    try:
        for step, (h1, h2) in enumerate(epochs()):
            if step == steps:
                break
            grads = []
            for model, optimizer, state, (factored, n_threads) in zip(twins, optimizers, states,
                                                                       settings):
                model.factor = factored
                torch.set_num_threads(n_threads or threads)
                model.train()
                optimizer.zero_grad()
                spec.two_view.objective(model, h1, h2, state, cfg["params"])["loss"].backward()
                grads.append(torch.cat([p.grad.flatten() for p in model.parameters()
                                        if p.grad is not None]))
                optimizer.step()
            params = [torch.cat([p.detach().flatten() for p in m.parameters()]) for m in twins]
            rows.append({"step": step + 1, "grad_rel_diff": rel_diff(*grads),
                         "param_rel_diff": rel_diff(*params)})
    finally:
        torch.set_num_threads(threads)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.recheck", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="a committed results.csv")
    parser.add_argument("--suite", default="mnist_halves")
    parser.add_argument("--d", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--methods", default=None, help="comma-separated (default: every method)")
    parser.add_argument("--threads", type=whole_number(1), default=1)
    parser.add_argument("--direct", action="store_true",
                        help="outputs as m x d tensors at every d (a trial's factored = False): "
                             "the reference path that the factored objectives must agree with")
    parser.add_argument("--against", choices=("committed", "direct"), default="committed",
                        help="compare with the committed numbers (default) or with a retrain on "
                             "the direct path")
    parser.add_argument("--float64", action="store_true",
                        help="networks, data and objectives in float64 (no bf16)")
    parser.add_argument("--trace", type=int, default=None, metavar="STEPS",
                        help="instead of retraining: the first STEPS steps twice side by side, "
                             "printing how far the two runs drift apart after each step")
    parser.add_argument("--trace-pair", choices=("paths", "threads"), default="paths",
                        help="with --trace: factored vs direct path (default), or the direct "
                             "path on 1 vs 2 threads")
    parser.add_argument("--json", action="store_true", help="one JSON object per trial")
    args = parser.parse_args(argv)
    if args.trace is not None and args.trace < 1:
        parser.error(f"--trace {args.trace}: give a number of steps >= 1")
    if args.direct and args.against == "direct":
        parser.error("--direct with --against direct would compare the direct path with itself")
    try:
        results = pd.read_csv(args.results)
    except (OSError, pd.errors.ParserError) as err:
        print(f"error: cannot read {args.results}: {err}", file=sys.stderr)
        return 2
    rows = committed_trials(results, args.d, args.seed,
                            args.methods.split(",") if args.methods else None)
    if rows.empty:
        print(f"error: no finished trial in {args.results} matches --d {args.d} --seed "
              f"{args.seed} --methods {args.methods}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    suite = get_suite(args.suite)
    profile = rows.profile.iloc[0]
    data = suite.load_data(profile, {})
    default_dtype = torch.get_default_dtype()
    if args.float64:
        torch.set_default_dtype(torch.float64)
        data = in_float64(data)
    try:
        if args.trace is not None:
            for _, row in rows.iterrows():
                config = run_config(row, args.float64)
                for line in trace_steps(suite, config, data, args.trace, args.trace_pair):
                    line = {"name": row["name"], "pair": args.trace_pair,
                            "float64": args.float64, **line}
                    print(json.dumps(line) if args.json else
                          f"{line['name']:<45} step {line['step']:>4}   gradient rel diff "
                          f"{line['grad_rel_diff']:.1e}   parameters rel diff "
                          f"{line['param_rel_diff']:.1e}", flush=True)
        else:
            report(suite, rows, data, args)
    finally:
        torch.set_default_dtype(default_dtype)  # an in-process caller is left as it was
    return 0


def report(suite, rows: pd.DataFrame, data: dict, args) -> None:
    """Retrain each row and print it against the committed numbers or the direct path."""
    for _, row in rows.iterrows():
        config = run_config(row, args.float64)
        record = retrain(suite, config, data, direct=args.direct)
        if args.against == "direct":
            reference = retrain(suite, config, data, direct=True)
            before_metrics, before_seconds = reference.metrics, reference.train_seconds
        else:
            before_metrics, before_seconds = row, row.train_seconds
        out = {"name": row["name"], "against": args.against, "float64": args.float64,
               "train_seconds_before": float(before_seconds),
               "train_seconds_after": float(record.train_seconds)}
        for key in COMPARED:
            before = float(before_metrics.get(key, float("nan")))
            after = float(record.metrics.get(key, float("nan")))
            out[f"{key}_before"], out[f"{key}_after"] = before, after
            out[f"{key}_rel_diff"] = abs(after - before) / max(abs(before), 1e-300)
        if args.json:
            print(json.dumps(out), flush=True)
        else:
            print(f"{out['name']:<45} corr_heldout {out['corr_heldout_before']:.10g} -> "
                  f"{out['corr_heldout_after']:.10g} (rel {out['corr_heldout_rel_diff']:.1e})   "
                  f"train {out['train_seconds_before']:.1f} s -> "
                  f"{out['train_seconds_after']:.1f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
