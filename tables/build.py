"""Rebuild a suite's tables and plots from the MLflow store alone (never trains).

    python -m tables.build --suite mnist_halves [--profile quick] [--mlflow-uri URI] [--out-dir DIR]

A generic driver: it reads the sweep's trial records from the store and asks the suite to
render them (`Suite.render`; model selection on validation only, test metrics as mean ± std
over seeds, the paper's numbers beside them).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from harness import registry, tracking
from harness.profiles import PROFILES
from harness.record import TrialRecord
from harness.suites import Suite, get_suite


def load_records(client, parent, superseded: bool = False) -> list[TrialRecord]:
    """One record per finished child run of a sweep (the store is the source of truth), in
    table order: method (registry order), d, name. Trials of an earlier plan (tagged by
    `tracking.supersede`) only with `superseded`."""
    records = {}
    for run in tracking.child_runs(client, parent):
        if (run.info.status != "FINISHED" or run.info.run_name in records
                or (run.data.tags.get(tracking.SUPERSEDED_TAG) == "true" and not superseded)):
            continue
        records[run.info.run_name] = TrialRecord.from_run(run)
    return sorted(records.values(), key=lambda r: (registry.rank(r.method), r.d, r.name))


def _suite_of(parent) -> Suite | None:
    try:
        return get_suite(parent.data.tags.get("suite", ""))
    except KeyError:
        return None


def load_rows(client, parent, suite: Suite | None = None, csv: bool = False) -> list[dict]:
    """The table rows of a sweep (`TrialRecord.table_row` with the suite's metric columns), or
    with `csv` results.csv's rows (`csv_row`: plus parameters, versions and hardware)."""
    suite = suite or _suite_of(parent)
    columns = suite.columns if suite is not None else ()
    return [r.csv_row(columns) if csv else r.table_row(columns)
            for r in load_records(client, parent)]


def build(suite_name: str, profile: str, client=None, uri: str | None = None,
          out_dir: Path | None = None, parent=None) -> list[Path]:
    """Write the suite's tables (Markdown), tables.csv and plots; return the paths.

    `parent`: the sweep's run; by default the store's latest sweep of (suite, profile), which
    a driver must not rely on: another sweep may have started in the same store since."""
    suite = get_suite(suite_name)
    client = client or tracking.open_client(uri)
    parent = parent or tracking.find_sweep(client, suite_name, profile)
    if parent is None:
        raise LookupError(f"no sweep of suite {suite_name!r} with profile {profile!r} in the "
                          f"store; run `python -m harness.run --suite {suite_name} --profile "
                          f"{profile}` first")
    df = pd.DataFrame(load_rows(client, parent, suite))
    if df.empty:
        raise LookupError(f"the sweep {parent.info.run_id} has no finished trials yet")
    out_dir = Path(out_dir or f"tables/results/{suite_name}-{profile}")
    out_dir.mkdir(parents=True, exist_ok=True)
    written, _ = suite.render(df, profile, parent, client, out_dir, suite_name)
    return written


def summary(client, parent) -> str:
    """A one-screen text table of the selected cells."""
    suite = _suite_of(parent)
    df = pd.DataFrame(load_rows(client, parent, suite))
    if df.empty or suite is None:
        return "no finished trials"
    return suite.summary(df)


def sweep_run(client, run_id: str, uri: str):
    """The sweep run `run_id`; LookupError if the store has none."""
    parent = tracking.run_by_id(client, run_id)
    if parent is None:
        raise LookupError(f"--sweep {run_id}: no such run in the MLflow store {uri}")
    return parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tables.build", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", required=True)
    parser.add_argument("--profile", default="quick", choices=tuple(PROFILES))
    parser.add_argument("--mlflow-uri", default="sqlite:///runs/mlflow.db")
    parser.add_argument("--out-dir", default=None,
                        help="default: tables/results/<suite>-<profile>")
    parser.add_argument("--sweep", default=None, metavar="RUN_ID",
                        help="the sweep's MLflow run id (harness.run prints it and records it in "
                             "<out>/<suite>-<profile>/sweep_run_id); default: the store's "
                             "latest sweep of the suite and profile")
    args = parser.parse_args(argv)
    try:
        db = tracking.sqlite_file(args.mlflow_uri)
        if db is not None and not db.is_file():  # reading must not make an empty store
            raise LookupError(f"--mlflow-uri {args.mlflow_uri}: no such store ({db} does not "
                              f"exist); pass the URI the sweep printed (its `browse it:` line)")
        client = tracking.open_client(args.mlflow_uri)
        written = build(args.suite, args.profile, client=client, out_dir=args.out_dir,
                        parent=args.sweep and sweep_run(client, args.sweep, args.mlflow_uri))
    except (LookupError, tracking.TrackingError) as err:  # KeyError (unknown suite) included
        print(f"error: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
