"""Build a sweep's tables and plots from its folder alone: its plan and its ledger.

    python -m tables.build FOLDER [FOLDER ...] [--out-dir DIR]

A FOLDER is what `harness.run` writes (`<out>/<suite>-<profile>`, holding plan.json and
records.jsonl), or a committed `tables/results/<suite>-<profile>`. Several folders of one
suite, profile and data are merged into one set of tables (a plug-in's sweep beside the
committed field). Nothing here reads the registry or MLflow: the tables are a function of
what the sweeps recorded, so a committed folder rebuilds byte-identically on any checkout.
Model selection is on validation only; test metrics are mean ± std over seeds.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from harness.common import HarnessError
from harness.ledger import SweepResults, read_folders
from harness.suites import get_suite


def table_rows(results: SweepResults) -> pd.DataFrame:
    """One row per recorded trial (`TrialRecord.table_row` with the plan's metric columns),
    in table order: method (the plan's row order), d, name."""
    columns, catalog = results.plan.columns, results.catalog
    records = sorted(results.records, key=lambda r: (catalog.rank(r.method), r.d, r.name))
    return pd.DataFrame([r.table_row(columns) for r in records])


def build(folders, out_dir: Path | None = None) -> list[Path]:
    """Write the suite's tables (Markdown), tables.csv and plots; return the paths."""
    results = read_folders(folders)
    df = table_rows(results)
    if df.empty:
        raise HarnessError(f"{folders[0]}: no finished trial in its ledger yet; rerun the "
                           f"sweep with --resume")
    if "phase" in df and (df.phase == "search").all():  # the reported trials are planned
        # only once the search has ended: there is nothing to select from yet
        raise HarnessError(f"{folders[0]}: its search is still running ({len(df)} search "
                           f"trials finished, no reported trial yet), and tables are built "
                           f"from the reported trials; rerun the sweep with --resume")
    plan = results.plan
    out_dir = Path(out_dir or folders[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    written, _ = get_suite(plan.suite).render(df, results, out_dir)
    return written


def summary(results: SweepResults) -> str:
    """A one-screen text table of the selected cells."""
    df = table_rows(results)
    if df.empty:
        return "no finished trials"
    return get_suite(results.plan.suite).summary(df, results)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tables.build", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", metavar="FOLDER",
                        help="sweep folders (plan.json + records.jsonl); several of one suite, "
                        "profile and data are merged")
    parser.add_argument("--out-dir", default=None,
                        help="where the tables go (default: the first FOLDER)")
    args = parser.parse_args(argv)
    try:
        written = build([Path(f) for f in args.folders], out_dir=args.out_dir)
    except (HarnessError, LookupError) as err:  # KeyError (unknown suite) included
        print(f"error: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
