"""Turn a results folder written before sweeps kept a ledger into a sweep folder.

    python -m tables.from_csv FOLDER --suite SUITE [--profile quick]

FOLDER holds the `results.csv` of a sweep (one row per trial, as harness.run wrote it). This
writes `records.jsonl` (one record per row: its identity, settings, parameters, metrics and
provenance) and `plan.json` (those trials, and a snapshot of the methods as the registry has
them now, with each objective's code version read from git at the commit its rows name), so
that `python -m tables.build FOLDER` rebuilds the tables without the MLflow store the sweep
wrote. What a results.csv never held is not invented: the records have no validation curve
(no val_curves.png) and no gallery, and their finishing date is the one the folder's
committed provenance line states.
"""
from __future__ import annotations

import argparse
import csv
import inspect
import math
import re
import subprocess
import sys
from pathlib import Path

from harness import registry
from harness.common import HarnessError
from harness.ledger import Ledger, MethodInfo, Plan, code_version, data_digest
from harness.record import IDENTITY, PROVENANCE, SETTINGS, TrialRecord
from harness.suites import get_suite

REPO = Path(__file__).resolve().parents[1]
NOT_METRICS = set(IDENTITY + SETTINGS + PROVENANCE) | {"hardware", "reason", "run_id", "end_time"}


def _value(text: str):
    if text == "":
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text and "e" not in text else number


class NotAtCommit(Exception):
    pass


def code_version_at(spec, commit: str) -> str:
    """`ledger.code_version(spec)` as it was at `commit`: the same digest of the same module
    files, read from git."""
    def source_at(module) -> str:
        path = Path(inspect.getsourcefile(module)).resolve().relative_to(REPO)
        shown = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=REPO,
                               capture_output=True, text=True)
        if shown.returncode != 0:
            raise NotAtCommit(path)
        return shown.stdout
    try:
        return code_version(spec, source_at)
    except NotAtCommit:
        return f"unknown at {commit}"


def finished_date(folder: Path) -> int:
    """The folder's finishing date from its committed provenance line, in ms (noon UTC)."""
    import calendar
    import time
    for table in sorted(folder.glob("*.md")):
        found = re.search(r"finished (\d{4}-\d\d-\d\d)", table.read_text())
        if found:
            day = time.strptime(found.group(1), "%Y-%m-%d")
            return (calendar.timegm(day) + 12 * 3600) * 1000
    return 0


def record_of(row: dict, end_time: int) -> TrialRecord:
    spec = registry.get(row["method"])
    params = {}
    for key, text in row.items():
        if key.startswith("param_") and text != "":
            name = key[len("param_"):]
            default = spec.defaults.get(name)
            value = _value(text)
            params[name] = type(default)(value) if isinstance(default, (int, float)) and \
                not isinstance(default, bool) and value is not None else value
    metrics = {}
    for key, text in row.items():
        if key in NOT_METRICS or key.startswith(("param_", "version_")) or text == "":
            continue
        value = _value(text)
        if isinstance(value, (int, float)) and not math.isnan(value):  # "nan": a blank cell
            metrics[key] = float(value)
    strength = _value(row.get("strength", ""))
    return TrialRecord(
        name=row["name"], method=row["method"], d=int(row["d"]), seed=int(row["seed"]),
        profile=row["profile"], strength_name=row.get("strength_name") or None,
        strength=None if strength is None else float(strength),
        batch=int(float(row["batch"])), lr=float(row["lr"]), epochs=int(float(row["epochs"])),
        precision=row.get("precision") or "fp32", hidden=row.get("hidden", ""),
        phase=row.get("phase", ""), params=params, metrics=metrics,
        train_seconds=None, device=row.get("device", ""), status=row.get("status", "ok"),
        reason=row.get("reason", ""), git_commit=row.get("git_commit", ""),
        versions={k[len("version_"):]: v for k, v in row.items()
                  if k.startswith("version_") and v != ""},
        hardware=row.get("hardware", ""), end_time=end_time)


def convert(folder: Path, suite_name: str, profile: str) -> Plan:
    suite = get_suite(suite_name)
    with open(folder / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise HarnessError(f"{folder}/results.csv has no rows")
    end_time = finished_date(folder)
    records = [record_of(row, end_time) for row in rows]
    order = {name: i for i, name in enumerate(registry.list_methods())}
    methods = {}
    for method in dict.fromkeys(r.method for r in records):
        spec = registry.get(method)
        commits = sorted({r.git_commit for r in records if r.method == method})
        versions = {code_version_at(spec, c) for c in commits}
        info = MethodInfo.of(spec, suite.family, order[method])
        # one version where every row's commit had the same objective code
        methods[method] = MethodInfo(**{**info.__dict__, "code_version": (
            versions.pop() if len(versions) == 1 else "mixed: " + ",".join(commits))})
    trials = [{"name": r.name, "method": r.method, "d": r.d, "seed": r.seed, "phase": r.phase,
               "profile": r.profile, "params": r.params, "lr": r.lr, "batch": r.batch,
               "epochs": r.epochs, "precision": r.precision,
               "hidden": [int(h) for h in r.hidden.split(",") if h],
               "strength_name": r.strength_name, "strength": r.strength} for r in records]
    plan = Plan(suite=suite.name, family=suite.family, profile=profile, trials=trials,
                methods=methods, columns=tuple(suite.columns), reference=suite.reference or {},
                reference_dims=tuple(suite.reference_dims),
                search_trials=max([int(t["name"].rsplit("search=", 1)[1].rstrip("]")) + 1
                                   for t in trials if t["phase"] == "search"] or [0]),
                seeds=len({r.seed for r in records if r.phase != "search"}),
                dims=tuple(sorted({r.d for r in records})),
                data_digest=data_digest(suite.load_data(profile, {})),
                git_commit=",".join(sorted({r.git_commit for r in records})),
                hardware=records[0].hardware, created="converted from results.csv")
    ledger = Ledger(folder)
    ledger.path.unlink(missing_ok=True)
    for record in records:
        ledger.append(record)
    plan.save(folder)
    return plan


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tables.from_csv", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("--suite", required=True)
    parser.add_argument("--profile", default="quick")
    args = parser.parse_args(argv)
    try:
        plan = convert(Path(args.folder), args.suite, args.profile)
    except (HarnessError, OSError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.folder}: {len(plan.trials)} trials into plan.json and records.jsonl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
