"""Sweep a suite with Ray Tune, track it in MLflow, and regenerate the paper's tables.

    python -m harness.run --suite mnist_halves [--profile quick] [--methods all] [--resume]

Every input is checked before a trial starts; a bad one gives a one-line error and exit 2.
Finished trials are logged as they end, so an interrupted sweep loses only running trials,
and `--resume` continues it (running trials restart from their last checkpoint).
"""
from __future__ import annotations

import argparse
import csv
import fnmatch
import math
import os
import shutil
import sys
import time
from pathlib import Path

from harness import record, registry, search, tracking
from harness.common import ConfigError, check_writable, first_line, save_atomic, whole_number
from harness.data.coco import CocoDataError
from harness.data.mnist_halves import DataError
from harness.extractors import MissingTextEncoder
from harness.models import PRECISIONS
from harness.profiles import PROFILES
from harness.suites import all_suites, get_suite


class UsageError(ValueError):
    pass


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one `error:` line (no usage block) and exit code 2."""

    def error(self, message):
        raise UsageError(f"{message} (see --help)")


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be a finite number ≥ 0 (e.g. 0.25 for "
                                         f"four trials per GPU)")
    return value


def default_dims_text(suites: dict) -> str:
    """`mnist_halves: paper 50,...,1000 / quick 50,200,1000 / smoke 10,50; arrays: 10; ...`,
    suites with the same defaults named together (for --help)."""
    by_text = {}
    for name, suite in suites.items():
        per = {p: ",".join(map(str, suite.dims_for(p))) for p in PROFILES}
        text = (next(iter(per.values())) if len(set(per.values())) == 1 else
                " / ".join(f"{p} {dims}" for p, dims in per.items()))
        by_text.setdefault(text, []).append(name)
    return "; ".join(f"{', '.join(names)}: {text}" for text, names in by_text.items())


def parse_args(argv=None):
    p = OneLineParser(prog="python -m harness.run", description=__doc__,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    suites = all_suites()
    p.add_argument("--suite", required=True, help=f"one of: {', '.join(suites)}")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="a module (name on the path, or a .py file) that registers methods; "
                   "repeatable. Installed plug-ins load themselves (entry point group "
                   "muc2m_harness.methods)")
    p.add_argument("--profile", choices=None, help="paper | quick | smoke (default: paper where "
                   "the cluster has a GPU, otherwise quick)")
    p.add_argument("--methods", default="all", help="comma-separated methods or patterns "
                   "('dcca*') or 'all' (the suite's defaults); " + "; ".join(
                       f"{name}: {', '.join(s.known_methods())}" for name, s in suites.items()))
    p.add_argument("--dims", default=None, help=f"comma-separated latent dimensions "
                   f"(default: the suite's for the profile; {default_dims_text(suites)})")
    p.add_argument("--strengths", default=None, help="comma-separated strengths applied to every "
                   "method, a grid instead of the search (default: the profile's search, or "
                   "each method's own grid with --search-trials 0)")
    p.add_argument("--search-trials", type=whole_number(0), default=None, help="configurations sampled "
                   "per (method, d) from each method's ranges, poor ones stopped early by ASHA, "
                   "the best on validation rerun with --seeds seeds; 0 = each method's grid "
                   "(default: the profile's: quick 6, paper 12, smoke 0)")
    p.add_argument("--seeds", type=whole_number(1), default=None,
                   help="seeds per reported configuration (default: the profile's: quick and "
                   "paper 3, smoke 1)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start and stop "
                   "a local Ray)")
    p.add_argument("--gpus-per-trial", type=_fraction, default=None, help="fractional GPUs per trial "
                   "(default: 0.25 where the cluster has GPUs, 0 otherwise)")
    p.add_argument("--cpus-per-trial", type=whole_number(1), default=1,
                   help="CPUs (and torch threads) per "
                   "trial (default 1)")
    p.add_argument("--max-concurrent", type=whole_number(1), default=None,
                   help="most trials at once "
                   "(default: as many as the resources allow)")
    p.add_argument("--fresh-worker-per-trial", action="store_true", help="start a new worker "
                   "process for every trial (default: a worker runs trial after trial, which "
                   "saves ~7 s a trial where short trials run one at a time; for a plug-in "
                   "objective that leaves global state behind)")
    p.add_argument("--mlflow-uri", default=None, help="MLflow tracking URI (default: "
                   "sqlite:///<out>/mlflow.db)")
    p.add_argument("--out", default="runs", help="output folder (default ./runs)")
    p.add_argument("--storage", default=None, help="where Ray Tune keeps the trials' "
                   "checkpoints: a folder every node can reach, or a bucket URI pyarrow "
                   "understands (s3://, gs://, ...); default <out>/<suite>-<profile>/ray_results, "
                   "enough on one machine")
    p.add_argument("--resume", action="store_true", help="continue the sweep of this suite "
                   "and profile whose --out this is (else the store's latest): finished trials "
                   "are kept, the rest run")
    p.add_argument("--mnist-dir", default=None, help="directory with the MNIST IDX files")
    p.add_argument("--data", default=None, metavar="FILE", help="--suite arrays: a .npz with "
                   "view1 (n × p1), view2 (n × p2), optional labels (n,) and split (n,)")
    p.add_argument("--hidden", default=None, help="hidden widths of every encoder, e.g. 64,32 "
                   "(default: the paper's 500,300)")
    p.add_argument("--epochs", type=whole_number(1), default=None,
                   help="override the profile's epochs "
                   "(for every d)")
    p.add_argument("--precision", default=None, choices=PRECISIONS, help="the "
                   "networks' arithmetic (two-view suites): fp32 or bf16 mixed precision "
                   "(default: the profile's: bf16 for quick, fp32 otherwise; "
                   "bf16: bf16 matmuls, fp32 weights, objectives unchanged; see BENCHMARKS.md)")
    p.add_argument("--data-root", default=None, help="COCO 2017 root (coco_* suites): holds "
                   "annotations/instances_{train,val}2017.json and {train,val}2017/")
    p.add_argument("--weights", action="append", default=[], metavar="NAME=PATH",
                   help="local weights for the coco_* suites: resnet50=FILE.pth, bert=DIR, "
                   "clip_rn50=FILE.pt (repeatable)")
    return p.parse_args(argv)


def _csv_list(text: str, cast, what: str) -> list:
    try:
        values = [cast(v) for v in text.split(",") if v.strip()]
    except UsageError as err:
        raise UsageError(f"--{what}: {err}") from None
    except ValueError:
        raise UsageError(f"--{what} {text!r}: expected comma-separated numbers") from None
    if not values:
        raise UsageError(f"--{what} is empty")
    return values


def _finite(text: str) -> float:
    value = float(text)  # a ValueError becomes "expected comma-separated numbers"
    if not math.isfinite(value):
        raise UsageError(f"{text!r} is not a finite number")
    return value


def _positive_int(text: str) -> int:
    value = float(text)  # a ValueError becomes "expected comma-separated numbers"
    if value != int(value) or value < 1:
        raise UsageError(f"{text!r} is not a positive integer")
    return int(value)


def build_trials(suite, profile: str, methods: list[str], dims: list[int], strengths, seeds: int,
                 checkpoint_root: Path, options: dict) -> list[dict]:
    """Every (method, d, strength, seed) configuration, validated (raises ConfigError).

    Largest d first: those trials are the slowest (their metrics above all), and Ray starts
    trials in this order, so the sweep ends on short trials instead of idling all but one
    slot through a long one (an earlier quick sweep ended on one d = 1000 trial, 16 min alone)."""
    trials = []
    grids = {}
    if isinstance(seeds, int):
        seeds = range(seeds)
    for method in methods:
        default_grid = suite.grid(method)
        grids[method] = (strengths if strengths is not None and default_grid
                         else (default_grid or (None,)))
    for d in sorted(dims, reverse=True):
        for method in methods:
            for strength in grids[method]:
                for seed in seeds:
                    config = {"method": method, "d": d, "strength": strength, "seed": seed,
                              "profile": profile, **options}
                    trials.append(_resolved(suite, config, checkpoint_root))
    return trials


def _resolved(suite, config: dict, checkpoint_root: Path) -> dict:
    """A trial config as Ray gets it: resolved (raises ConfigError) and given its folder."""
    resolved = suite.resolve(config)
    config.update({k: resolved[k] for k in ("name", "strength_name", "strength", "batch", "lr",
                                            "epochs", "eval_every", "params")})
    config["checkpoint_dir"] = str(checkpoint_root / resolved["name"])
    return config


def searched(suite, methods: list[str], n_trials: int) -> list[str]:
    """The methods the search samples (those with a search space), when it is on."""
    return [m for m in methods if n_trials > 0 and registry.get(m).search] if \
        suite.family == "two_view" else []


def build_search_trials(suite, profile: str, methods: list[str], dims: list[int], n_trials: int,
                        checkpoint_root: Path, options: dict) -> list[dict]:
    """`n_trials` configurations per (method, d) from each method's ranges (harness.search),
    validated. Each validates often enough for ASHA's rungs: every ~1/9 of its epochs."""
    trials = []
    for d in sorted(dims, reverse=True):
        for method in searched(suite, methods, n_trials):
            spec = registry.get(method)
            for i, values in enumerate(search.sample(spec.search, n_trials,
                                                     search.cell_seed(method, d))):
                config = {"method": method, "d": d, "seed": search.SEARCH_SEED_BASE + i,
                          "profile": profile, "phase": "search",
                          "name": search_name(method, d, values, i), **options,
                          **search.config_of(spec, values)}
                epochs = suite.resolve(config)["epochs"]
                config["eval_every"] = max(1, round(epochs / 9))
                trials.append(_resolved(suite, config, checkpoint_root))
    return trials


def search_name(method: str, d: int, values: dict, i: int) -> str:
    """`dcca[d=200,ridge=1.49e-06,search=3]`: the values are in the name, so a resumed sweep
    whose ranges or trial count changed reruns what changed instead of reusing it."""
    shown = ",".join(f"{k}={v:.4g}" for k, v in values.items())
    return f"{method}[d={d},{shown},search={i}]"


def selected_name(method: str, d: int, values: dict, seed: int) -> str:
    """`sdcca[d=50,rho=0.16,lr=0.00472,seed=0]`: every searched value, not only the strength,
    so that a resumed sweep whose choice changed in any of them reruns the cell."""
    shown = ",".join(f"{k}={v:g}" for k, v in values.items())
    return f"{method}[d={d},{shown},seed={seed}]"


def build_selected_trials(suite, profile: str, methods: list[str], dims: list[int],
                          n_trials: int, seeds: int, records: list, checkpoint_root: Path,
                          options: dict, planned: set | None = None) -> tuple[list[dict], list[str]]:
    """The reported trials: per (method, d) the search's choice on validation with `seeds`
    seeds, and the grid for methods the search does not cover. Returns (trials, notes)."""
    chosen, notes = [], []
    to_search = searched(suite, methods, n_trials)
    grid_methods = [m for m in methods if m not in to_search]
    trials = build_trials(suite, profile, grid_methods, dims, None, seeds, checkpoint_root,
                          options) if grid_methods else []
    for d in sorted(dims, reverse=True):
        for method in to_search:
            spec = registry.get(method)
            cell = [r for r in records if r.phase == "search" and r.method == method and r.d == d
                    and (planned is None or r.name in planned)]  # this plan's trials only
            best = search.choose(cell)
            if best is None:
                notes.append(f"{method} d={d}: no search trial ended with a validation "
                             f"correlation ({len(cell)} tried); nothing to rerun")
                continue
            values = search.values_of(spec, best)
            for seed in range(seeds):
                config = {"method": method, "d": d, "seed": seed, "profile": profile, **options,
                          "name": selected_name(method, d, values, seed),
                          **search.config_of(spec, values)}
                chosen.append(_resolved(suite, config, checkpoint_root))
    return trials + chosen, notes


def check_storage(storage: str | None) -> None:
    """A folder must be writable; a URI must name a file system pyarrow can open."""
    if storage is None:
        return
    if "://" not in storage:
        check_writable(Path(storage), "--storage")
        return
    import pyarrow.fs as pafs
    try:
        pafs.FileSystem.from_uri(storage)
    except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a bad URI
        raise UsageError(f"--storage {storage}: pyarrow cannot open it ({first_line(err)}); "
                         f"give a shared folder or a bucket URI such as s3://bucket/sweeps") from None


def write_results_csv(path: Path, rows: list[dict], metric_columns: tuple = ()) -> None:
    """results.csv from `TrialRecord.csv_row` rows, replaced atomically."""
    def write(tmp):
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, record.csv_columns(rows, metric_columns),
                                    extrasaction="ignore", restval="")
            writer.writeheader()
            writer.writerows(rows)
    save_atomic(path, write)


def main(argv=None) -> int:
    try:
        return _main(parse_args(argv))
    except (UsageError, ConfigError, DataError, CocoDataError, MissingTextEncoder,
            tracking.TrackingError, registry.PluginError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyError as err:
        print(f"error: {err.args[0]}", file=sys.stderr)
        return 2


def select_methods(text: str, suite) -> list[str]:
    """`--methods`: 'all', or names and shell-style patterns (`dcca*`), in the order given."""
    if text == "all":
        return list(suite.methods)
    known, chosen = suite.known_methods(), []
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        if any(c in token for c in "*?["):
            matches = fnmatch.filter(known, token)
            if not matches:
                raise UsageError(f"--methods {token!r} matches no method of suite {suite.name}; "
                                 f"its methods: {', '.join(known)}")
        elif token not in known:
            raise UsageError(f"unknown method {token!r} for suite {suite.name}; choose from: "
                             f"{', '.join(known)}")
        else:
            matches = [token]
        chosen += [m for m in matches if m not in chosen]
    if not chosen:
        raise UsageError(f"--methods {text!r} names no method; give a comma-separated list or "
                         f"'all'")
    return chosen


def _main(args) -> int:
    started = time.time()
    for plugin in args.plugin:
        added = registry.load_plugin(plugin)
        print(f"plug-in {plugin}: {', '.join(added)}", flush=True)
    suite = get_suite(args.suite)
    if args.profile is not None and args.profile not in PROFILES:
        raise UsageError(f"unknown profile {args.profile!r}; choose one of: {', '.join(PROFILES)}")
    methods = select_methods(args.methods, suite)
    strengths = _csv_list(args.strengths, _finite, "strengths") if args.strengths is not None else None
    if strengths is not None and args.search_trials:
        raise UsageError("--strengths sets a grid and --search-trials a search: give one of them")
    if args.search_trials and suite.family != "two_view":
        raise UsageError(f"--search-trials: suite {suite.name} sweeps its grid (the search runs "
                         f"on two-view suites); drop the flag")
    if not args.address and args.cpus_per_trial > (os.cpu_count() or 1):
        raise UsageError(f"--cpus-per-trial {args.cpus_per_trial}: this machine has "
                         f"{os.cpu_count()} CPUs, so no trial could ever start; use at most "
                         f"{os.cpu_count()}")
    if args.mnist_dir and not Path(args.mnist_dir).is_dir():
        raise UsageError(f"--mnist-dir {args.mnist_dir}: no such folder; give the folder that "
                         f"holds MNIST/raw/*-idx*-ubyte")
    out = Path(args.out)
    check_writable(out, "--out")
    check_storage(args.storage)
    options = {"mnist_dir": args.mnist_dir} if args.mnist_dir else {}
    if args.data_root:
        options["data_root"] = args.data_root
    if args.data:
        options["data"] = args.data
    if args.hidden is not None:
        options["hidden"] = tuple(_csv_list(args.hidden, _positive_int, "hidden"))
    for pair in args.weights:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise UsageError(f"--weights {pair!r}: expected NAME=PATH, e.g. resnet50=/data/rn50.pth")
        options.setdefault("weights", {})[key] = value
    if args.precision is not None:
        options["precision"] = args.precision
    if args.epochs is not None:
        options["epochs"] = args.epochs
    # Validate every configuration against the requested (or fallback) profile before Ray starts.
    dims, n_search, seeds = plan(args, suite, args.profile or "quick", strengths)
    build_trials(suite, args.profile or "quick", methods, dims, strengths, seeds, out, options)
    build_search_trials(suite, args.profile or "quick", methods, dims, n_search, out, options)
    suite.check_inputs(options)  # e.g. COCO root and weights: fail before Ray starts
    uri = args.mlflow_uri or tracking.default_uri(out)  # the store last: bad input makes none
    client = tracking.open_client(uri, artifact_dir=out / "mlartifacts")

    from harness import tune as tune_runner  # Ray is imported only for sweeps
    try:
        resources = tune_runner.connect(args.address,
                                        num_cpus=None if args.address else os.cpu_count())
    except tune_runner.ClusterError as err:
        raise UsageError(str(err)) from None
    try:
        gpus = float(resources.get("GPU", 0))
        profile = args.profile or ("paper" if gpus > 0 else "quick")
        why = "given" if args.profile else ("the cluster has a GPU" if gpus else "no GPU in the cluster")
        print(f"profile: {profile} ({why}); cluster: {resources.get('CPU', 0):.0f} CPUs, "
              f"{gpus:.0f} GPUs", flush=True)
        gpus_per_trial = args.gpus_per_trial if args.gpus_per_trial is not None else (
            0.25 if gpus > 0 else 0.0)
        if gpus_per_trial > 0 and gpus == 0:
            raise UsageError(f"--gpus-per-trial {gpus_per_trial}: the cluster has no GPU")
        return _sweep(args, suite, profile, methods, strengths, out, uri, client, options,
                      gpus_per_trial, started)
    finally:
        tune_runner.shutdown()


SWEEP_RUN_ID = "sweep_run_id"  # in the sweep's folder: the MLflow run that --resume continues


def sweep_to_resume(client, uri: str, suite: str, profile: str, sweep_dir: Path):
    """The sweep whose folder this is: its run id is recorded there when it starts, so that
    two sweeps of one (suite, profile) in one store (a shared tracking server) resume each its
    own. A folder without the record (from before it was kept) resumes the store's latest sweep
    of (suite, profile); None if there is none."""
    recorded = sweep_dir / SWEEP_RUN_ID
    if not recorded.exists():
        return tracking.find_sweep(client, suite, profile)
    run_id = recorded.read_text().strip()
    parent = tracking.run_by_id(client, run_id)
    if parent is None:
        raise UsageError(f"--resume: the sweep {run_id} recorded in {recorded} is not in the "
                         f"MLflow store {uri}; pass the store it was logged to with "
                         f"--mlflow-uri")
    return parent


def plan(args, suite, profile: str, strengths) -> tuple[list[int], int, int]:
    """(dims, search trials per (method, d), seeds) from the flags, else the profile's."""
    dims = (_csv_list(args.dims, _positive_int, "dims") if args.dims is not None
            else list(suite.dims_for(profile)))
    prof = suite.profile(profile)
    n_search = 0 if strengths is not None or suite.family != "two_view" else (
        args.search_trials if args.search_trials is not None else prof.search_trials)
    return dims, n_search, args.seeds or prof.seeds


def _sweep(args, suite, profile, methods, strengths, out, uri, client, options,
           gpus_per_trial, started) -> int:
    from harness import tune as tune_runner
    from tables import build as tables_build

    sweep_dir = out / f"{suite.name}-{profile}"
    storage = args.storage if args.storage and "://" in args.storage else str(
        Path(args.storage or sweep_dir / "ray_results").resolve())
    checkpoint_root = sweep_dir / "checkpoints"
    dims, n_search, seeds = plan(args, suite, profile, strengths)
    search_trials = build_search_trials(suite, profile, methods, dims, n_search, checkpoint_root,
                                        options)
    trials = build_trials(suite, profile, [m for m in methods if m not in
                                           searched(suite, methods, n_search)],
                          dims, strengths, seeds, checkpoint_root, options)
    data = suite.load_data(profile, options)  # a data error stops here, before any store write
    parent = sweep_to_resume(client, uri, suite.name, profile, sweep_dir) if args.resume else None
    sweep_dir.mkdir(parents=True, exist_ok=True)
    outbox = tracking.Outbox(sweep_dir / "pending_trials.jsonl")
    if parent is not None:
        if outbox.flush(client, parent):  # trials an earlier driver could not log
            raise UsageError(f"the MLflow store {uri} still does not take the "
                             f"{len(outbox.pending())} kept trials in {outbox.path}; "
                             f"rerun --resume when it is reachable")
        finished = tracking.prepare_resume(client, parent)
        left = [t for t in (search_trials or trials) if t["name"] not in finished]
        print(f"resuming sweep {parent.info.run_id}: {len(finished)} trials already finished, "
              f"{len(left)} to run" + (" in the search" if search_trials else ""), flush=True)
    else:
        if args.resume:
            print("nothing to resume: starting a new sweep", flush=True)
        shutil.rmtree(checkpoint_root, ignore_errors=True)  # a new sweep starts from scratch
        outbox.path.unlink(missing_ok=True)
        parent = tracking.start_sweep(client, suite.name, profile, {
            "methods": ",".join(methods), "dims": ",".join(map(str, dims)),
            "strengths": ("default grids" if strengths is None else
                          ",".join(map(str, strengths))),
            "search_trials": n_search, "seeds": seeds, "profile": profile,
            "gpus_per_trial": gpus_per_trial, "address": args.address or "local"})
        print(f"sweep {parent.info.run_id} (MLflow run; --resume continues it)", flush=True)
        finished = set()
    (sweep_dir / SWEEP_RUN_ID).write_text(parent.info.run_id + "\n")  # what --resume reads
    results_csv = sweep_dir / "results.csv"
    records = tables_build.load_records(client, parent, superseded=True) if finished else []
    rows = [r.csv_row(suite.columns) for r in records]

    def on_result(result: record.TrialRecord) -> None:
        records.append(result)  # the search's choice reads them
        # The outbox first: it is what --resume logs, so a driver killed at any point after
        # this line leaves the trial resumable (a CSV row alone would be run again).
        outbox.add(result)
        rows.append(result.csv_row(suite.columns))
        write_results_csv(results_csv, rows, suite.columns)
        outbox.flush(client, parent)

    def run_phase(phase_trials: list[dict], experiment: str, scheduler=None) -> bool:
        """Run the trials not finished yet; False when the sweep was interrupted."""
        todo = [t for t in phase_trials if t["name"] not in finished]
        print(f"{len(todo)} trials to run ({len(phase_trials)} in this phase)", flush=True)
        try:
            ended = tune_runner.run_grid(todo, data, suite=suite, storage=storage,
                                         on_result=on_result, gpus_per_trial=gpus_per_trial,
                                         cpus_per_trial=args.cpus_per_trial,
                                         max_concurrent=args.max_concurrent,
                                         experiment_name=experiment, scheduler=scheduler,
                                         fresh_workers=args.fresh_worker_per_trial)
        except KeyboardInterrupt:
            ended = -1
        return ended >= len(todo)  # Ray Tune returns early on Ctrl-C

    interrupted = False
    if search_trials:
        n_methods = len(searched(suite, methods, n_search))
        print(f"search: {n_search} configurations per (method, d) for {n_methods} methods × "
              f"{len(dims)} d, sampled from each method's ranges; ASHA stops the poor ones on "
              f"validation; the best on validation is then rerun with {seeds} seeds", flush=True)
        interrupted = not run_phase(search_trials, f"{parent.info.run_id}-search",
                                    tune_runner.PerCellASHA())
        if not interrupted:
            trials, notes = build_selected_trials(suite, profile, methods, dims, n_search, seeds,
                                                  records, checkpoint_root, options,
                                                  planned={t["name"] for t in search_trials})
            for note in notes:
                print(f"warning: {note}", file=sys.stderr, flush=True)
            print(f"reported trials: the selected configuration of every (method, d) × "
                  f"{seeds} seeds", flush=True)
    if not interrupted:
        if finished:  # a resumed sweep whose plan changed: the old plan's trials leave the tables
            stale = tracking.supersede(client, parent, {t["name"] for t in search_trials + trials})
            if stale:
                print(f"{len(stale)} finished trials are not in this plan (a search range or a "
                      f"flag changed): kept in the store, tagged superseded, left out of the "
                      f"tables", flush=True)
        interrupted = not run_phase(trials, parent.info.run_id)
    if interrupted:
        print("\ninterrupted: finished trials are stored; rerun the same command with --resume "
              "to continue", file=sys.stderr)
        return 130
    for wait_s in (0, 5, 10, 20, 30):  # the store may still be coming back
        time.sleep(wait_s)
        if not outbox.flush(client, parent):
            break
    else:
        print(f"error: the MLflow store {uri} did not come back; {len(outbox.pending())} "
              f"finished trials are kept in {outbox.path} and {results_csv}: rerun the same "
              f"command with --resume to log them and build the tables", file=sys.stderr)
        return 1
    tracking.prepare_resume(client, parent)  # exactly once: drop what an outage half-wrote
    written = tables_build.build(suite.name, profile, client=client, out_dir=sweep_dir,
                                 parent=parent)
    write_results_csv(results_csv, tables_build.load_rows(client, parent, suite, csv=True), suite.columns)
    tracking.end_sweep(client, parent, written + [results_csv])
    print(tables_build.summary(client, parent), flush=True)
    print(f"\nsweep finished in {(time.time() - started) / 60:.1f} min; tables and plots in "
          f"{sweep_dir}\nbrowse it: {tracking.ui_command(uri)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
