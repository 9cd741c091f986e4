"""The whole protocol's time left: every phase of a sweep, not only the one running.

A searched sweep plans its later phases as it goes (the next rung from the last one's
results, the reported trials from the search's choice), so their trials are not in the plan
yet. `remaining` counts them anyway, from the protocol's shape: each cell's rungs keep
`search.n_promoted` configurations each, and each cell ends with `seeds` reported trials at
the full budget. A widening round cannot be foreseen and is not counted (the ETA grows if
one starts).

Work is counted in estimated seconds of one trial slot: epochs × seconds per epoch of the
(method, d), measured on this sweep's trials that have ended (a (method, d) not seen yet: the
median over what has been seen, scaled by the method's `epoch_cost`). Under a convergence rule
a trial may stop before its cap, so a planned epoch counts as the fraction of planned epochs
that ended trials actually trained. The ETA is then the wall time so far times work left over
work done: concurrency, validation passes and overheads are in the ratio as they have been.
"""
from __future__ import annotations

import math
import statistics

from harness import registry, search


def _epochs_run(record, planned: int) -> float:
    metrics = record.metrics or {}
    for key in ("epochs_trained", "epochs_run"):
        if key in metrics and math.isfinite(float(metrics[key])):
            return float(metrics[key])
    return float(planned or 1)


class CostModel:
    """Seconds per epoch by (method, d), and the share of planned epochs that are trained,
    from the records of trials that ended in this run."""

    def __init__(self, trials_by_name: dict, records: list):
        per_epoch, trained, planned = {}, 0.0, 0.0
        for record in records:
            trial = trials_by_name.get(record.name)
            if trial is None or not record.train_seconds or record.status == "failed":
                continue
            start = _start_epoch(trial)
            ran = max(1.0, _epochs_run(record, trial["epochs"]) - start)
            per_epoch.setdefault((record.method, record.d), []).append(
                record.train_seconds / ran)
            trained += ran
            planned += max(1, trial["epochs"] - start)
        self.per_epoch = {k: statistics.median(v) for k, v in per_epoch.items()}
        self.share = min(1.0, trained / planned) if planned else 1.0
        scaled = [v / _cost(m) for (m, _), v in self.per_epoch.items()]
        self.fallback = statistics.median(scaled) if scaled else 1.0

    def seconds(self, method: str, d: int, epochs: float) -> float:
        rate = self.per_epoch.get((method, d))
        if rate is None:
            rate = self.fallback * _cost(method)
        return rate * epochs * self.share


def _cost(method: str) -> float:
    try:
        return registry.get(method).epoch_cost
    except KeyError:
        return 1.0


def _start_epoch(trial: dict) -> int:
    """A rung trial continues from the previous rung's epochs (its checkpoint)."""
    rung, rungs = trial.get("rung", 0), trial.get("rungs")
    return rungs[rung - 1] if rungs and rung > 0 else 0


def remaining_trials(plan, finished: dict) -> list[tuple[str, int, float]]:
    """(method, d, epochs to train) of every trial the protocol has left: the plan's
    unfinished trials, then the rungs and reported trials it has not planned yet."""
    left = [(t["method"], t["d"], t["epochs"] - _start_epoch(t)) for t in plan.trials
            if t["name"] not in finished or finished[t["name"]].status == "failed"]
    cells: dict = {}
    for t in plan.trials:
        if t.get("phase") == "search":
            cells.setdefault((t["method"], t["d"]), []).append(t)
    reported = {(t["method"], t["d"]) for t in plan.trials if t.get("phase") != "search"}
    for (method, d), trials in cells.items():
        full = max(t["epochs"] for t in trials) if "rungs" not in trials[0] else \
            trials[0]["rungs"][-1]
        for group in _rounds(trials):
            rungs = group[0].get("rungs")
            if not rungs:
                continue
            n = len({t["config"] for t in group if t["rung"] == 0})
            planned_rungs = {t["rung"] for t in group}
            for r in range(1, len(rungs)):
                n = search.n_promoted(n)
                if r not in planned_rungs:
                    left += [(method, d, rungs[r] - rungs[r - 1])] * n
        if (method, d) not in reported:
            left += [(method, d, full)] * plan.seeds
    return left


def _rounds(trials: list) -> list[list]:
    groups: dict = {}
    for t in trials:
        groups.setdefault(t.get("round", 0), []).append(t)
    return list(groups.values())


def protocol_eta(plan, finished: dict, ended_here: list, elapsed_s: float) -> float | None:
    """Seconds left for the whole protocol, or None before any trial has ended in this run."""
    if not ended_here or elapsed_s <= 0:
        return None
    by_name = {t["name"]: t for t in plan.trials}
    model = CostModel(by_name, ended_here)
    done = sum(model.seconds(r.method, r.d, max(1, by_name[r.name]["epochs"] -
                                                _start_epoch(by_name[r.name])))
               for r in ended_here if r.name in by_name)
    left = sum(model.seconds(m, d, e) for m, d, e in remaining_trials(plan, finished))
    return elapsed_s * left / done if done else None


def text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds >= 5400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"
