"""What a sweep's whole-protocol ETA said as it went, kept beside its ledger so that the
estimate can be checked against the time the protocol really took
(`python -m harness.bench.eta FOLDER`).

`progress.jsonl` holds one line per event: a run's start (`{"event": "start", ...}`; a resumed
sweep adds one per run), each trial ended in that run (its count in the run and the ETA then,
in seconds, or null before the estimate exists), and the run's end once its tables are built.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path


class ProgressLog:
    def __init__(self, path: Path):
        self.path = Path(path)

    def _append(self, row: dict) -> None:
        try:
            with open(self.path, "a") as fh:
                fh.write(json.dumps({"time": round(time.time(), 1), **row}) + "\n")
        except OSError:  # a note about the estimate must never stop a sweep
            pass

    def started(self, resume: bool) -> None:
        self._append({"event": "start", "resume": resume})

    def ended(self, trial: str, ended_in_run: int, eta_s: float | None) -> None:
        self._append({"event": "ended", "trial": trial, "ended_in_run": ended_in_run,
                      "eta_s": None if eta_s is None else round(eta_s, 1)})

    def finished(self) -> None:
        self._append({"event": "finished"})


def read_runs(path: Path) -> list[list[dict]]:
    """The events of `path`, one list per run (split at each start)."""
    runs: list[list[dict]] = []
    for line in Path(path).read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a killed driver
            continue
        if row.get("event") == "start" or not runs:
            runs.append([])
        runs[-1].append(row)
    return runs


@dataclass
class EtaCheck:
    """The ETA of one run against the time that run really had left."""
    checked: int            # ended trials whose ETA was compared
    run_minutes: float      # the run's wall time, start to finish
    median_error: float     # of (ETA − true time left) / true time left
    worst_error: float      # the largest |error| (signed)
    within: float           # the share of checked ETAs within `tolerance`
    tolerance: float
    errors: list            # (ended_in_run, minutes left, ETA minutes, error)


MIN_LEFT_S = 60.0  # an ETA with less than this really left is not checked: the last trial's
                  # (0, with only the tables to build) would count as a 100 % error of seconds


def check_eta(run: list[dict], from_trial: int = 10, tolerance: float = 0.25) -> EtaCheck:
    """Each ETA given from the `from_trial`-th ended trial on, while at least `MIN_LEFT_S` was
    really left, against the time from then to the run's end. Raises ValueError for a run that
    did not finish (its true time is unknown)."""
    end = next((r["time"] for r in run if r.get("event") == "finished"), None)
    if end is None:
        raise ValueError("this run did not finish, so the time it had left is unknown; check a "
                         "run that ended with its tables built")
    errors = []
    for row in run:
        if row.get("event") != "ended" or row.get("eta_s") is None:
            continue
        left = end - row["time"]
        if row["ended_in_run"] < from_trial or left < MIN_LEFT_S:
            continue
        errors.append((row["ended_in_run"], left / 60, row["eta_s"] / 60,
                       (row["eta_s"] - left) / left))
    if not errors:
        raise ValueError(f"no ETA was given from the {from_trial}th ended trial on")
    values = sorted(e[3] for e in errors)
    median = values[len(values) // 2]
    worst = max(values, key=abs)
    within = sum(abs(v) <= tolerance for v in values) / len(values)
    return EtaCheck(len(errors), (end - run[0]["time"]) / 60, median, worst, within,
                    tolerance, errors)
