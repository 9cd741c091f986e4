"""A sweep from its plan to its tables: schedule the plan's trials with Ray, append each
finished one to the ledger, mirror the ledger to MLflow, and render the tables from plan and
ledger.

    plan.json      every trial and the rendering snapshot (harness.planner, harness.ledger)
    records.jsonl  one line per finished trial (the ledger: what resume and tables read)
    results.csv    the ledger as a flat table, for a spreadsheet
    tables         table*.md, tables.csv, plots: tables.build's function of the two files

Resume is the plan minus the ledger. MLflow is a mirror: an unreachable store delays it,
never a result (`tracking.Mirror`), and `python -m harness.mirror` rebuilds a store.
"""
from __future__ import annotations

import csv
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import eta, planner, record, tracking
from harness.progress import ProgressLog
from harness.common import HarnessError, save_atomic
from harness.ledger import Ledger, Plan, archive_previous, read_folders


class SweepError(HarnessError):
    pass


@dataclass
class SweepRequest:
    """What a sweep was asked for (the CLI's flags, checked)."""
    suite: object
    strengths: list | None                       # as asked: None for the default grids
    out: Path
    options: dict
    plan: Plan                                   # its one plan (harness.planner.make_plan):
                                                 # methods, d, search and seeds
    data: dict                                   # the suite's splits the plan was made for
    resume: bool = False
    reuse: list = field(default_factory=list)    # sweep folders whose matching trials count
    storage: str | None = None
    mlflow_uri: str | None = None
    address: str | None = None
    gpus_per_trial: float = 0.0
    cpus_per_trial: int = 1
    max_concurrent: int | None = None
    fresh_workers: bool = False

    @property
    def folder(self) -> Path:
        return sweep_folder(self.out, self.suite.name, self.plan.profile)


def sweep_folder(out: Path, suite_name: str, profile: str) -> Path:
    """Where a sweep keeps its plan, ledger, checkpoints and tables."""
    return Path(out) / f"{suite_name}-{profile}"


def write_results_csv(path: Path, records: list, metric_columns: tuple = ()) -> None:
    """results.csv from the ledger's records, replaced atomically."""
    # the suite's metric columns that some trial has: no recognition column of NaN for
    # data without labels
    metric_columns = tuple(c for c in metric_columns
                           if c == "train_seconds" or any(c in r.metrics for r in records))
    rows = [r.csv_row(metric_columns) for r in records]

    def write(tmp):
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, record.csv_columns(rows, metric_columns),
                                    extrasaction="ignore", restval="")
            writer.writeheader()
            writer.writerows(rows)
    save_atomic(path, write)


def run_sweep(req: SweepRequest, started: float) -> int:
    from harness import tune as tune_runner
    from tables import build as tables_build

    suite, folder = req.suite, req.folder
    storage = req.storage if req.storage and "://" in req.storage else str(
        Path(req.storage or folder / "ray_results").resolve())
    checkpoint_root = folder / "checkpoints"
    plan, data = req.plan, req.data
    ledger = Ledger(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not req.resume:
        if (folder / "records.jsonl").exists():
            print(f"a new sweep in {folder}: its earlier records.jsonl and plan.json are kept "
                  f"there under a dated name (--resume continues a sweep instead)", flush=True)
        archive_previous(folder)
        shutil.rmtree(checkpoint_root, ignore_errors=True)  # a new sweep starts from scratch
    plan.save(folder)

    mirror = tracking.Mirror.open(req.mlflow_uri or tracking.default_uri(req.out),
                                  req.out / "mlartifacts", suite.name, plan.profile, folder,
                                  plan_params(req), resume=req.resume)
    finished = ledger.finished()
    if req.resume:
        done = [n for n in plan.names() if n in finished]
        print(f"resuming sweep {mirror.sweep_id}: {len(done)} trials already finished, "
              f"{len(plan.names()) - len(done)} to run", flush=True)
    else:
        print(f"sweep {mirror.sweep_id} (MLflow run; --resume continues it)", flush=True)
    for other in req.reuse:
        _reuse(plan, plan.trials, other, ledger, finished)
    mirror.sync(ledger.records())

    ended_here: list = []  # the trials this run trained: what the protocol ETA is timed on
    sweep_eta = eta.SweepEta(plan, finished, ended_here)

    def whole_eta(in_flight: dict | None = None) -> str:
        return eta.text(sweep_eta.seconds(in_flight))

    progress = ProgressLog(folder / "progress.jsonl")  # what the ETA said, for its check
    progress.started(resume=req.resume)

    def on_result(result: record.TrialRecord) -> None:
        result.end_time = result.end_time or int(time.time() * 1000)  # the tables' date
        ledger.append(result)  # first: a driver killed after this line keeps the trial
        finished[result.name] = result
        ended_here.append(result)
        progress.ended(result.name, len(ended_here), sweep_eta.seconds())
        records = ledger.records()  # read once for both
        write_results_csv(folder / "results.csv", records, suite.columns)
        mirror.sync(records)

    def run_phase(trials: list[dict], experiment: str, scheduler=None) -> bool:
        """Run the trials not finished yet; False when the sweep was interrupted."""
        todo = [t for t in trials if t["name"] not in finished or
                finished[t["name"]].status == "failed"]
        whole = eta.remaining_trials(plan, finished)
        estimate = whole_eta()
        print(f"{len(todo)} trials to run ({len(trials)} in this phase; the whole protocol has "
              f"{len(whole)} left, {eta.epochs_at_most(whole)} epochs at most"
              + (f", ETA {estimate}" if estimate else "") + ")", flush=True)
        if not todo:
            return True
        try:
            ended = tune_runner.run_grid(todo, data, suite=suite, storage=storage,
                                         on_result=on_result, gpus_per_trial=req.gpus_per_trial,
                                         cpus_per_trial=req.cpus_per_trial,
                                         max_concurrent=req.max_concurrent,
                                         experiment_name=experiment, scheduler=scheduler,
                                         fresh_workers=req.fresh_workers,
                                         protocol_eta=whole_eta)
        except KeyboardInterrupt:
            ended = -1
        return ended >= len(todo)  # Ray Tune returns early on Ctrl-C

    interrupted = False
    search = [t for t in plan.trials if t.get("phase") == "search"]
    if search:
        n_methods = len({t["method"] for t in search})
        how = ("narrowed by successive halving on validation (the best third, at least two, and "
               "the references go on to the next rung)" if plan.search == "halving" else
               "ASHA stops the poor ones on validation")
        print(f"search: {plan.search_trials} configurations per (method, d) for {n_methods} "
              f"methods × {len(plan.dims)} d (each method's references, then samples of its "
              f"ranges); {how}; the best at the full budget is then rerun with {plan.seeds} seeds",
              flush=True)
        if plan.search == "asha":
            interrupted = not run_phase(search, f"{mirror.sweep_id}-search",
                                        tune_runner.PerCellASHA())
        rung = 0
        while not interrupted and plan.search == "halving":
            trials = [t for t in plan.trials if t.get("phase") == "search" and t["rung"] == rung]
            if trials:
                interrupted = not run_phase(trials, f"{mirror.sweep_id}-search-{rung}")
                if not interrupted:  # the rung has fully reported: its promotions, from the ledger
                    plan.trials += planner.next_rung(plan, finished, rung)
                    plan.save(folder)
                    rung += 1
                continue
            # every rung has run: a cell selected at an outer end of a range is searched again
            # past it (its earlier rungs are finished and not rerun)
            wider = planner.widen(suite, plan, finished, checkpoint_root, req.options)
            if not wider:
                break
            print(f"widening: {len({(t['method'], t['d']) for t in wider})} cells selected in the "
                  f"outer part of a range are searched again past it ({len(wider)} "
                  f"configurations)", flush=True)
            plan.trials += wider
            plan.save(folder)
            rung = 0
        if not interrupted:
            chosen, notes = planner.plan_selected(suite, plan, list(finished.values()),
                                                  checkpoint_root, req.options)
            for note in notes:
                print(f"warning: {note}", file=sys.stderr, flush=True)
            plan.trials += chosen  # the plan's second phase, chosen from the ledger
            plan.save(folder)
            for other in req.reuse:
                _reuse(plan, chosen, other, ledger, finished)
            print(f"reported trials: the selected configuration of every (method, d) × "
                  f"{plan.seeds} seeds", flush=True)
    if not interrupted:
        stale = mirror.supersede(set(plan.names()))
        if stale:
            print(f"{len(stale)} finished trials are not in this plan (a search range or a "
                  f"flag changed): kept in the ledger and the store, left out of the tables",
                  flush=True)
        interrupted = not run_phase([t for t in plan.trials if t.get("phase") != "search"],
                                    mirror.sweep_id)
    if interrupted:
        print("\ninterrupted: finished trials are in the ledger; rerun the same command with "
              "--resume to continue", file=sys.stderr)
        return 130
    progress.finished()
    write_results_csv(folder / "results.csv", ledger.records(), suite.columns)
    # the reused folders' other methods stand in this sweep's tables (a plug-in beside the
    # committed field); `python -m tables.build` of the same folders rebuilds them
    written = tables_build.build([folder, *req.reuse], out_dir=folder)
    if not mirror.finish(ledger.records(), written + [folder / "results.csv"]):
        print(f"error: the MLflow store {mirror.uri} did not come back; every finished trial "
              f"is in {ledger.path} and the tables are built; rerun the same command with "
              f"--resume (or `python -m harness.mirror {folder}`) to mirror them",
              file=sys.stderr)
        return 1
    print(tables_build.summary(read_folders([folder, *req.reuse])), flush=True)
    print(f"\nsweep finished in {(time.time() - started) / 60:.1f} min; tables and plots in "
          f"{folder}\nbrowse it: {tracking.ui_command(mirror.uri)}  (starts the MLflow UI), "
          f"then open {tracking.runs_url(mirror.parent)}", flush=True)
    return 0


def _reuse(plan: Plan, trials: list[dict], other: Path, ledger: Ledger, finished: dict) -> None:
    """Append to the ledger the trials of `other`'s ledger that are trials of this plan."""
    other_results = read_folders([other])
    todo = [t for t in trials if t["name"] not in finished]
    found = planner.reusable(plan, todo, other_results.plan, other_results.records)
    for name, rec in found.items():
        ledger.append(rec)
        finished[name] = rec
    print(f"reused {len(found)} of {len(todo)} trials to run from {other}", flush=True)


def plan_params(req: SweepRequest) -> dict:
    plan = req.plan
    return {"methods": ",".join(plan.methods), "dims": ",".join(map(str, plan.dims)),
            "strengths": ("default grids" if req.strengths is None else "defaults"
                          if req.strengths == [None] else ",".join(map(str, req.strengths))),
            "search_trials": plan.search_trials, "seeds": plan.seeds, "profile": plan.profile,
            "gpus_per_trial": req.gpus_per_trial, "address": req.address or "local"}
