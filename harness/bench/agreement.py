"""Do two sweeps of the same protocol agree? (bf16 against fp32, one CPU against another.)

    python -m harness.bench.agreement runs/a/mnist_halves-quick runs/b/mnist_halves-quick

reads each folder's `tables.csv` (written with its tables) and prints one JSON line per
(method, d) both have: whether they selected the same configuration, each one's test
corr_heldout (mean ± std over seeds), the difference (b − a) and whether it lies within the
bound the oracle audit allows a protocol's regret, max(1, 2 × pooled seed std); then per d
whether the order of the methods' means is the same (and which pairs flip, with their
gaps in each), and how many cells agree.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd

from harness.audit import bound, pooled_std
from harness.cli import OneLineParser, UsageError, run_cli

METRIC = "corr_heldout"


def _cells(folder: Path) -> pd.DataFrame:
    path = folder / "tables.csv"
    if not path.is_file():
        raise UsageError(f"{path}: no such file; build the folder's tables first "
                         f"(python -m tables.build {folder})")
    df = pd.read_csv(path)
    return df[df["status"] == "ok"].set_index(["method", "d"])


def _setting(row: pd.Series) -> dict:
    """The selected configuration: its searched parameters and learning rate."""
    keys = [k for k in row.index if k.startswith("param_") or k == "lr"]
    return {k: row[k] for k in keys if pd.notna(row[k])}


def _equal(x, y) -> bool:
    try:
        return math.isclose(float(x), float(y), rel_tol=1e-3)
    except (TypeError, ValueError):  # a choice, not a number
        return str(x) == str(y)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)


def compare(a: pd.DataFrame, b: pd.DataFrame) -> tuple[list[dict], list[dict]]:
    """(one row per common cell, one row per d with the methods' order in each)."""
    cells = []
    for key in a.index.intersection(b.index):
        ra, rb = a.loc[key], b.loc[key]
        mean_a, mean_b = float(ra[f"{METRIC}_mean"]), float(rb[f"{METRIC}_mean"])
        pooled = pooled_std(float(ra[f"{METRIC}_std"]), int(ra["n_seeds"]),
                            float(rb[f"{METRIC}_std"]), int(rb["n_seeds"]))
        diff = mean_b - mean_a
        cells.append({"method": key[0], "d": int(key[1]),
                      "same_selection": _same(_setting(ra), _setting(rb)),
                      "a": f"{mean_a:.2f} ± {float(ra[f'{METRIC}_std']):.2f}",
                      "b": f"{mean_b:.2f} ± {float(rb[f'{METRIC}_std']):.2f}",
                      "diff": round(diff, 2), "bound": round(bound(pooled), 2),
                      "within": abs(diff) <= bound(pooled)})
    orders = []
    for d in sorted({c["d"] for c in cells}):
        methods = [c["method"] for c in cells if c["d"] == d]
        mean = lambda df, m: float(df.loc[(m, d), f"{METRIC}_mean"])  # noqa: E731
        rank = lambda df: sorted(methods, key=lambda m: -mean(df, m))  # noqa: E731
        flipped = [(m, n, round(mean(a, m) - mean(a, n), 2), round(mean(b, m) - mean(b, n), 2))
                   for i, m in enumerate(methods) for n in methods[i + 1:]
                   if (mean(a, m) - mean(a, n)) * (mean(b, m) - mean(b, n)) < 0]
        orders.append({"d": d, "order_a": rank(a), "order_b": rank(b),
                       "same_order": rank(a) == rank(b),
                       # (m, n, gap in a, gap in b) for each pair the two order oppositely
                       "flipped_pairs": flipped})
    return cells, orders


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m harness.bench.agreement",
                           description=__doc__.split("\n\n")[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)

    def go(argv):
        args = parser.parse_args(argv)
        cells, orders = compare(_cells(args.a), _cells(args.b))
        if not cells:
            raise UsageError(f"{args.a} and {args.b} share no (method, d); compare two sweeps "
                             f"of one suite")
        for row in cells + orders:
            print(json.dumps(row, ensure_ascii=False))
        print(json.dumps({"cells": len(cells),
                          "same_selection": sum(c["same_selection"] for c in cells),
                          "within_bound": sum(c["within"] for c in cells),
                          "same_order": sum(o["same_order"] for o in orders),
                          "dims": len(orders)}))
        return 0
    return run_cli(go, argv)


if __name__ == "__main__":
    sys.exit(main())
