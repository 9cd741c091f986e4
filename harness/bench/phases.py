"""How much a sweep's phase barriers cost: one Ray phase per rung of the halving search (and
one for the reported trials) waits for its slowest trial before the next phase starts.

    python -m harness.bench.phases runs/mnist_halves-quick [--slots 2]

reads the folder's plan and ledger only. Per phase: its trials, its wall span (from the first
trial's start, its end minus `train_seconds`, to the last one's end; stretches where no trial
ran, such as a sweep stopped and resumed, are left out), the share of `--slots` trial slots
that trained (`train_seconds`; a trial's setup and its Ray overhead count as idle), and the
tail: the minutes from the last moment every slot was busy to the phase's end, i.e. what a
scheduler that starts the next rung's trials at once could save at most; and the epochs its
trials trained from their rung's start (a survivor continues from the previous rung's
checkpoint, so these are what the protocol run from an empty folder trains; a closed form's
fit counts none). A last line sums the epochs.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness import eta
from harness.cli import OneLineParser, UsageError, run_cli
from harness.ledger import Ledger, Plan


def phase_of(trial: dict) -> str:
    if trial.get("phase") != "search":
        return "reported"
    return f"round {trial.get('round', 0)} rung {trial.get('rung', 0)}"


def epochs_from_rung_start(record, trial: dict) -> int:
    """The epochs a trial trains from an empty folder: from its rung's start to where it
    stopped (a resumed run's restored epochs included); none for a closed form's fit."""
    if eta.is_closed_form(record.method):
        return 0
    trained = (record.metrics or {}).get("epochs_trained", trial["epochs"])
    return max(0, int(trained) - eta.rung_start_epoch(trial))


def phase_costs(intervals: list[tuple[float, float]], slots: int) -> dict:
    """Span, busy share and tail of one phase from its trials' (start, end) times."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running, last, span, full_until = 0, events[0][0], 0.0, events[0][0]
    for t, step in events:
        if running > 0:
            span += t - last  # time with no trial running is not the barrier's
        if running >= slots:
            full_until = t
        running += step
        last = t
    end = max(e for _, e in intervals)
    busy = sum(e - s for s, e in intervals)
    return {"trials": len(intervals), "span_min": round(span / 60, 1),
            "slots_busy": round(busy / (slots * span), 3) if span > 0 else None,
            "tail_min": round((end - max(full_until, events[0][0])) / 60, 1)}


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m harness.bench.phases",
                           description=__doc__.split("\n\n")[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--slots", type=int, default=2, help="trials that ran at a time")

    def go(argv):
        args = parser.parse_args(argv)
        if not (args.folder / "plan.json").is_file():
            raise UsageError(f"{args.folder}: no plan.json; give a sweep folder")
        trials = {t["name"]: t for t in Plan.load(args.folder).trials}
        phases: dict = {}
        epochs: dict = {}
        for record in Ledger(args.folder).records():
            trial = trials.get(record.name)
            if trial is None or not record.end_time or not record.train_seconds:
                continue
            end = record.end_time / 1000
            phases.setdefault(phase_of(trial), []).append((end - record.train_seconds, end))
            epochs[phase_of(trial)] = (epochs.get(phase_of(trial), 0)
                                       + epochs_from_rung_start(record, trial))
        for name, intervals in phases.items():
            print(json.dumps({"phase": name, **phase_costs(intervals, args.slots),
                              "epochs": epochs[name]}))
        print(json.dumps({"epochs_in_all": sum(epochs.values())}))
        return 0
    return run_cli(go, argv)


if __name__ == "__main__":
    sys.exit(main())
