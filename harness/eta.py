"""The whole protocol's time left: every phase of a sweep, not only the one running.

A searched sweep plans its later phases as it goes (the next rung from the last one's
results, the reported trials from the search's choice), so their trials are not in the plan
yet. `remaining` counts them anyway, from the protocol's shape: each cell's rungs keep
`search.n_promoted` configurations each, plus its references (counted as if none were among
the best, so at most one or two trials too many), and each cell ends with `seeds` reported trials at
the full budget. A widening round cannot be foreseen and is not counted (the ETA grows if
one starts). A resumed sweep plans rung 0 again and re-plans the later rungs as it reaches
them: the ledger's trials of rungs not re-planned yet count as done.

Work left is counted in estimated seconds of one trial slot: epochs × seconds per epoch of
the (method, d), the fastest seen on the sweep's finished trials, those of earlier runs of a
resumed sweep included (the fastest, because a worker's first trial also pays its start-up; a
(method, d) not seen yet: the median over what has been seen, scaled by the method's
`epoch_cost`). Under a convergence rule a trial allowed the full budget stops when it
converges: it counts the epochs it is expected to take, not its cap. That expectation is the
profile's `rung_budget` (read from the plan's rungs as 3 × the middle one), worth
`PRIOR_WEIGHT` trials, moved by the epochs the (method, d)'s own converged trials took. It is
not pooled across methods: methods converge at different paces (Deep CCA in about 100
epochs, CorrNet in about 170), and the first to converge in a sweep are whichever the plan
runs first. The first trials of a (method, d) to converge are its quick ones, so a running
trial already past the expectation counts too, as its epoch plus half a patience window (a
censored draw). The ETA is then this run's wall time so far times work left over the work
this run did: its ended trials' measured training seconds, and the epochs its running ones
have reported, priced as above. Concurrency, load, evaluation after training and overheads
are in that ratio as they have been; measuring the work done, rather than pricing it at the
fastest rate, keeps a trial's start-up out of the ratio's denominator as it is out of its
numerator's prices. No ETA is shorter than the longest trial left: at the end the last trial
runs alone.
"""
from __future__ import annotations

import math
import statistics
import time
from collections import Counter

from harness import registry, search


def _two_view(method: str) -> registry.TwoView:
    """The method's two-view part; a plain one (priced like DCCA) for a method no longer
    registered or one without that part."""
    try:
        return registry.get(method).two_view or registry.TwoView()
    except KeyError:
        return registry.TwoView()


def is_closed_form(method: str) -> bool:
    return _two_view(method).closed_form is not None


def _cost(method: str) -> float:
    return _two_view(method).epoch_cost


def _work_done(record, trial: dict) -> float:
    """The epochs an ended trial trained in this run: from its rung's start, or from the
    checkpoint a resumed driver restored (its `train_seconds` count only those). A closed
    form's fit is one unit of work, whatever its epochs say."""
    if is_closed_form(record.method):
        return 1.0
    metrics, ran = record.metrics or {}, float(trial["epochs"] or 1)
    for key in ("epochs_trained", "epochs_run"):
        if key in metrics and math.isfinite(float(metrics[key])):
            ran = float(metrics[key])
            break
    resumed = float(metrics.get("resumed_from") or 0)
    return max(1.0, ran - max(rung_start_epoch(trial), resumed if math.isfinite(resumed) else 0))


PRIOR_WEIGHT = 2    # the profile's converging epochs count as this many converged trials


class CostModel:
    """Seconds per epoch by (method, d), and the epochs a converging trial takes, from the
    records of a sweep's finished trials (and the epochs its running ones have reached)."""

    def __init__(self, trials_by_name: dict, records: list, prior_epochs: float | None = None,
                 running: dict | None = None):
        per_epoch, converged = {}, {}
        for record in records:
            trial = trials_by_name.get(record.name)
            if record.status == "failed":
                continue
            if trial is not None and record.train_seconds:
                per_epoch.setdefault((record.method, record.d), []).append(
                    record.train_seconds / _work_done(record, trial))
            # at its full budget: by its plan, or (a trial the plan has not re-planned yet
            # since a resume) a reported one
            full = _converging(trial) if trial is not None else not record.phase
            if full and "epochs_trained" in (record.metrics or {}):
                converged.setdefault((record.method, record.d), []).append(
                    float(record.metrics["epochs_trained"]))
        self.per_epoch = {k: min(v) for k, v in per_epoch.items()}
        # a method not seen yet is priced like the trained ones (a closed form's fit is not
        # an epoch)
        scaled = [v / _cost(m) for (m, _), v in self.per_epoch.items() if not is_closed_form(m)]
        self.fallback = statistics.median(scaled) if scaled else 1.0
        # what a (method, d) with no converged trial is expected to take: the profile's
        # figure, or without one (no rungs in the plan) the mean of every converged trial
        every = [e for v in converged.values() for e in v]
        self.prior = prior_epochs if prior_epochs is not None else (
            statistics.mean(every) if every else None)
        self.converging = {key: self._shrunk(took) for key, took in converged.items()}
        # running trials past their expectation: a lower bound on what such trials take
        for name, epoch in (running or {}).items():
            trial = trials_by_name.get(name)
            if trial is None or not _converging(trial):
                continue
            key, floor = (trial["method"], trial["d"]), float(epoch) + _half_window(trial)
            expected = self.converging.get(key, self.prior)
            if expected is not None and floor > expected:
                converged.setdefault(key, []).append(floor)
                self.converging[key] = self._shrunk(converged[key])

    def _shrunk(self, took: list) -> float:
        """The mean of a (method, d)'s epochs, with the prior as PRIOR_WEIGHT more."""
        return statistics.mean(took + ([self.prior] * PRIOR_WEIGHT
                                       if self.prior is not None else []))

    def seconds(self, method: str, d: int, epochs: float) -> float:
        rate = self.per_epoch.get((method, d))
        if rate is None:
            rate = self.fallback * _cost(method)
        return rate * epochs

    def expected_epochs(self, trial: dict) -> float | None:
        """The epochs (from 0) a converging trial of this (method, d) is expected to take."""
        return self.converging.get((trial["method"], trial["d"]), self.prior)

    def epochs_left(self, trial: dict, at: float | None = None) -> float:
        """The epochs a trial still has to train from its rung's start, or from epoch `at` it
        has reached: its planned ones, or under a convergence rule, for a trial allowed its
        full budget, those it is expected to take (at least half a patience window more once
        it runs past them)."""
        start, planned = rung_start_epoch(trial), trial["epochs"]
        now = start if at is None else max(start, float(at))
        if is_closed_form(trial["method"]):
            return 0.0 if at is not None else 1.0
        end = planned
        if _converging(trial):
            expected = self.expected_epochs(trial)
            if expected is not None:
                end = min(planned, expected if at is None else
                          max(expected, now + _half_window(trial)))
        return max(0.0, end - now)


def _half_window(trial: dict) -> float:
    """Half the epochs a converging trial trains past its best before it stops."""
    return 0.5 * float(trial.get("patience") or 0) * float(trial.get("eval_every") or 1)


def _converging(trial: dict) -> bool:
    """A trial that may stop before its epochs: under a convergence rule, at its full budget
    (a low rung trains its epochs)."""
    rungs = trial.get("rungs")
    return bool(trial.get("patience")) and (not rungs or trial.get("rung", 0) == len(rungs) - 1)


def rung_start_epoch(trial: dict) -> int:
    """A rung trial continues from the previous rung's epochs (its checkpoint)."""
    rung, rungs = trial.get("rung", 0), trial.get("rungs")
    return rungs[rung - 1] if rungs and rung > 0 else 0


def remaining_trials(plan, finished: dict) -> list[dict]:
    """Every trial the protocol has left, as trial dicts: the plan's unfinished trials, then
    the rungs and reported trials it has not planned yet (method, d, epochs, rung, rungs,
    patience: what `CostModel.epochs_left` reads)."""
    left = [t for t in plan.trials
            if t["name"] not in finished or finished[t["name"]].status == "failed"]
    cells: dict = {}
    for t in plan.trials:
        if t.get("phase") == "search":
            cells.setdefault((t["method"], t["d"]), []).append(t)
    reported = {(t["method"], t["d"]) for t in plan.trials if t.get("phase") != "search"}
    # a resumed sweep re-plans its later rungs as it reaches them: trials of those it had
    # already finished are in the ledger, not yet in the plan, and are not left to run
    planned = set(plan.names())
    done_unplanned = Counter((r.method, r.d, r.phase or "", r.epochs) for name, r in finished.items()
                             if name not in planned and r.status != "failed")

    def not_done(n: int, method: str, d: int, phase: str, epochs: int) -> int:
        key = (method, d, phase, epochs)
        taken = min(n, done_unplanned[key])
        done_unplanned[key] -= taken
        return n - taken

    for (method, d), trials in cells.items():
        rungs = trials[0].get("rungs")
        full = rungs[-1] if rungs else max(t["epochs"] for t in trials)
        base = {"method": method, "d": d, "patience": trials[0].get("patience", 0)}
        for group in _rounds(trials):
            rungs = group[0].get("rungs")
            if not rungs:
                continue
            n = len({t["config"] for t in group if t["rung"] == 0})
            # the references go on whatever they score: counted as if none were among the best
            carried = len({t["config"] for t in group if t["rung"] == 0 and t.get("reference")})
            planned_rungs = {t["rung"] for t in group}
            for r in range(1, len(rungs)):
                n = min(n, search.n_promoted(n) + carried)
                if r not in planned_rungs:
                    left += [{**base, "epochs": rungs[r], "rung": r, "rungs": rungs}] * \
                        not_done(n, method, d, "search", rungs[r])
        if (method, d) not in reported:
            left += [{**base, "epochs": full}] * not_done(plan.seeds, method, d, "", full)
    return left


def epochs_at_most(trials: list[dict]) -> int:
    """The epochs `trials` train if none stops early."""
    return round(sum(t["epochs"] - rung_start_epoch(t) for t in trials))


def prior_epochs(plan) -> float | None:
    """What the profile expects a converging trial to take: its `rung_budget`, of which the
    middle rung is a third."""
    for t in plan.trials:
        if t.get("rungs") and len(t["rungs"]) >= 3:
            return 3.0 * t["rungs"][-2]
    return None


def _rounds(trials: list) -> list[list]:
    groups: dict = {}
    for t in trials:
        groups.setdefault(t.get("round", 0), []).append(t)
    return list(groups.values())


def protocol_eta(plan, finished: dict, ended_here: list, elapsed_s: float,
                 in_flight: dict | None = None) -> float | None:
    """Seconds left for the whole protocol, or None before any trial has ended in this run.

    Seconds per epoch come from every finished trial of the sweep (a resumed one knows each
    method's cost from the start); the wall time of this run over the work it did scales
    them to the machine as it is now. `in_flight` ({running trial: its last reported epoch})
    counts what running trials have done, so the estimate does not swing as they end."""
    if not ended_here or elapsed_s <= 0:
        return None
    by_name = {t["name"]: t for t in plan.trials}
    running = {name: epoch for name, epoch in (in_flight or {}).items()
               if name in by_name and name not in finished}
    model = CostModel(by_name, list(finished.values()), prior_epochs(plan), running)
    # ended trials: the seconds they trained (measured); running ones: their epochs, priced
    done = sum(r.train_seconds or model.seconds(r.method, r.d, _work_done(r, by_name[r.name]))
               for r in ended_here if r.name in by_name)
    left = longest = 0.0
    for t in remaining_trials(plan, finished):
        epoch = running.get(t.get("name"))
        seconds = model.seconds(t["method"], t["d"], model.epochs_left(t, epoch))
        left, longest = left + seconds, max(longest, seconds)
        if epoch is not None and not is_closed_form(t["method"]):
            done += model.seconds(t["method"], t["d"],
                                  max(0.0, min(float(epoch), t["epochs"]) - rung_start_epoch(t)))
    # concurrency shares the work left between slots, but no trial ends sooner than its own
    # seconds: at the end, the last trial runs alone
    return max(elapsed_s * left / done, longest) if done else None


class SweepEta:
    """The whole protocol's ETA as a sweep runs, over the sweep's live `finished` ({name:
    record}) and `ended_here` (the records this run trained)."""

    def __init__(self, plan, finished: dict, ended_here: list, clock=time.time):
        self.plan, self.finished, self.ended_here, self.clock = plan, finished, ended_here, clock
        self.started = clock()
        self.in_flight: dict = {}  # the live view's last {running trial: epoch reported}
        self.last: tuple | None = None  # (what it was computed from, when, seconds)

    def seconds(self, in_flight: dict | None = None) -> float | None:
        """Seconds left (None before any trial of this run has ended); `in_flight` updates
        the running trials' epochs, else the last ones given stand."""
        if in_flight is not None:
            self.in_flight = dict(in_flight)
        # A trial's end asks twice, for the progress log and then for the live view: with
        # nothing new ended, reported or planned (a phase's start plans the next rung or the
        # reported trials), and within a second, the first answer serves both.
        key = (len(self.ended_here), len(self.plan.trials), tuple(sorted(
            (name, epoch) for name, epoch in self.in_flight.items()
            if name not in self.finished)))
        now = self.clock()
        if self.last and self.last[0] == key and now - self.last[1] < 1.0:
            return self.last[2]
        try:
            seconds = protocol_eta(self.plan, self.finished, self.ended_here,
                                   now - self.started, self.in_flight)
        except Exception:  # noqa: BLE001 - an estimate must never stop a sweep
            seconds = None
        self.last = (key, now, seconds)
        return seconds


def text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds >= 5400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"
