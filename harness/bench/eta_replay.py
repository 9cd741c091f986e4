"""Replay a finished sweep's ETA with the ETA code as it is now, to try a change to
`harness.eta` on a recorded run in seconds instead of rerunning it.

    python -m harness.bench.eta_replay runs/mnist_halves-quick [--from 10] [--verbose]

For each trial that ended in the folder's first run (it must have started from an empty
folder and finished), it rebuilds what the live ETA saw then: the trials ended so far, the
plan as far as it had been planned (a phase is planned when the previous one's last trial
ended), and each running trial's epoch, taken as linear in its training time and rounded down
to its validation interval. It prints the replayed ETA's check (as `harness.bench.eta` does)
and how far the recorded ETA is from the replayed one under the same code, which measures how
faithful the replay is (running trials' epochs are approximated).
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path

from harness import eta
from harness.cli import OneLineParser, UsageError, run_cli
from harness.ledger import Ledger, Plan
from harness.progress import check_eta, read_runs


def _phases(trials: list[dict]) -> list[list[dict]]:
    """The plan's trials cut where a phase was planned: rung by rung, then the reported ones."""
    key = lambda t: (t.get("phase", ""), t.get("round", 0), t.get("rung"))  # noqa: E731
    return [list(group) for _, group in itertools.groupby(trials, key)]


def _span(record) -> tuple[float, float]:
    end = record.end_time / 1000
    return end - (record.train_seconds or 0.0), end


def _epoch_at(trial: dict, record, now: float) -> int:
    """The last epoch a running trial had reported by `now`, if its epochs ran at one pace."""
    start, end = _span(record)
    first = eta.rung_start_epoch(trial)
    last = float((record.metrics or {}).get("epochs_trained") or trial["epochs"])
    ran = first + (last - first) * (now - start) / max(end - start, 1e-9)
    every = max(1, int(trial.get("eval_every") or 1))
    return max(first, int(ran // every * every))


def replay(folder: Path) -> tuple[list[dict], list[tuple]]:
    """(the first run's events with `eta_s` recomputed, [(trial, recorded, replayed)])."""
    runs = read_runs(folder / "progress.jsonl")
    if not runs or runs[0][0].get("resume"):
        raise UsageError(f"{folder}: its first run was a resume; replay a sweep that started "
                         f"from an empty folder")
    run = runs[0]
    if not any(r.get("event") == "finished" for r in run):
        raise UsageError(f"{folder}: its first run did not finish; replay a finished sweep")
    plan = Plan.load(folder)
    records = {r.name: r for r in Ledger(folder).records()}
    phases = _phases(plan.trials)
    planned_at = [run[0]["time"]]  # a phase is planned when the previous one has ended
    for phase in phases[:-1]:
        ends = [records[t["name"]].end_time / 1000 for t in phase if t["name"] in records]
        planned_at.append(max(ends, default=planned_at[-1]))
    by_name = {t["name"]: t for t in plan.trials}
    started, out, pairs = run[0]["time"], [], []
    ended_names: list[str] = []
    for row in run:
        if row.get("event") != "ended":
            out.append(row)
            continue
        now = row["time"]
        ended_names.append(row["trial"])
        view = Plan(**{**plan.__dict__, "trials": [t for phase, at in zip(phases, planned_at)
                                                   if at <= now + 1e-6 for t in phase]})
        finished = {n: records[n] for n in ended_names if n in records}
        in_flight = {}
        for t in view.trials:
            r = records.get(t["name"])
            if r is not None and t["name"] not in finished and _span(r)[0] <= now:
                in_flight[t["name"]] = _epoch_at(t, r, now)
        seconds = eta.protocol_eta(view, finished, [finished[n] for n in ended_names
                                                    if n in finished], now - started, in_flight)
        out.append({**row, "eta_s": seconds})
        if row.get("eta_s") is not None and seconds is not None:
            pairs.append((row["ended_in_run"], row["eta_s"], seconds))
    return out, pairs


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m harness.bench.eta_replay",
                           description=__doc__.split("\n\n")[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--from", dest="from_trial", type=int, default=10)
    parser.add_argument("--tolerance", type=float, default=0.25)
    parser.add_argument("--verbose", action="store_true")

    def go(argv):
        args = parser.parse_args(argv)
        if not (args.folder / "progress.jsonl").is_file():
            raise UsageError(f"{args.folder}: no progress.jsonl; give a sweep folder written "
                             f"by harness.run")
        events, pairs = replay(args.folder)
        result = check_eta(events, args.from_trial, args.tolerance)
        drift = [abs(b - a) / max(a, 60.0) for n, a, b in pairs if n >= args.from_trial]
        print(json.dumps({"run_minutes": round(result.run_minutes, 1),
                          "checked": result.checked,
                          "median_error": round(result.median_error, 3),
                          "worst_error": round(result.worst_error, 3),
                          f"within_{args.tolerance:g}": round(result.within, 3),
                          "replay_vs_recorded_median": round(statistics.median(drift), 3)
                          if drift else None}))
        if args.verbose:
            recorded = {n: a for n, a, _ in pairs}
            for n, left, eta_min, error in result.errors:
                was = recorded.get(n)
                print(f"  trial {n}: {left:.1f} min left, ETA {eta_min:.1f} min, error "
                      f"{error:+.1%}" + (f" (recorded {was / 60:.1f} min)" if was else ""))
        return 0
    return run_cli(go, argv)


if __name__ == "__main__":
    sys.exit(main())
