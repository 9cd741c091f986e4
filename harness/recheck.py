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
"""
from __future__ import annotations

import argparse
import json
import math
import sys

import pandas as pd
import torch

from harness import registry
from harness.models import TwoViewModel
from harness.suites import get_suite

COMPARED = ("corr_heldout", "corr_refit", "corr_diag", "recog_acc")


def committed_trials(results: pd.DataFrame, d: int | None, seed: int | None,
                     methods: list[str] | None) -> pd.DataFrame:
    rows = results[(results.status == "ok") & (results.phase.fillna("") != "search")]
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
    return {"method": row.method, "d": int(row.d), "seed": int(row.seed),
            "profile": row.profile, "overrides": overrides, "lr": float(row.lr),
            "epochs": int(row.epochs), "precision": row.precision, "name": row["name"]}


def retrain(suite, config: dict, data, direct: bool = False):
    """One trial; with `direct`, no factored outputs at any d (the class-wide switch is put
    back afterwards, so an in-process caller is left as it was)."""
    factor = TwoViewModel.factor
    TwoViewModel.factor = factor and not direct
    try:
        return suite.trial(config, data=data)
    finally:
        TwoViewModel.factor = factor


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.recheck", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="a committed results.csv")
    parser.add_argument("--suite", default="mnist_halves")
    parser.add_argument("--d", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--methods", default=None, help="comma-separated (default: every method)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--direct", action="store_true",
                        help="outputs as m x d tensors at every d (TwoViewModel.factor = False): "
                             "the reference path that the factored objectives must agree with")
    parser.add_argument("--json", action="store_true", help="one JSON object per trial")
    args = parser.parse_args(argv)
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
    for _, row in rows.iterrows():
        record = retrain(suite, config_of(row), data, direct=args.direct)
        out = {"name": row["name"], "train_seconds_before": float(row.train_seconds),
               "train_seconds_after": float(record.train_seconds)}
        for key in COMPARED:
            before, after = float(row[key]), float(record.metrics.get(key, float("nan")))
            out[f"{key}_before"], out[f"{key}_after"] = before, after
            out[f"{key}_rel_diff"] = abs(after - before) / max(abs(before), 1e-300)
        if args.json:
            print(json.dumps(out), flush=True)
        else:
            print(f"{out['name']:<45} corr_heldout {out['corr_heldout_before']:.10g} -> "
                  f"{out['corr_heldout_after']:.10g} (rel {out['corr_heldout_rel_diff']:.1e})   "
                  f"train {out['train_seconds_before']:.1f} s -> "
                  f"{out['train_seconds_after']:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
