"""Sweep a suite with Ray Tune, track it in MLflow, and regenerate the paper's tables.

    python -m harness.run --suite mnist_halves [--profile quick] [--methods all] [--resume]

Every input is checked before a trial starts; a bad one gives a one-line error and exit 2.
Finished trials are logged as they end, so an interrupted sweep loses only running trials,
and `--resume` continues it (running trials restart from their last checkpoint).
"""
from __future__ import annotations

import argparse
import fnmatch
import math
import os
import sys
import time
from pathlib import Path

from harness import planner, registry, tracking
from harness.cli import (EMULATED_BF16, OneLineParser, UsageError, add_suite_options,
                         positive_int, run_cli, suite_options, trial_gpus, warn_emulated_bf16)
from harness.common import check_writable, first_line, whole_number
from harness.ledger import check_mergeable, data_digest, read_folders
from harness.models import PRECISIONS, native_bf16_cpu
from harness.profiles import PROFILES
from harness.suites import all_suites, get_suite
from harness.sweep import SweepRequest, run_sweep, sweep_folder


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
                   "method, a grid instead of the search, or 'default': each method at its "
                   "registry default only (a spot check) (default: the profile's search, or "
                   "each method's own grid with --search-trials 0)")
    p.add_argument("--search-trials", type=whole_number(0), default=None, help="configurations sampled "
                   "per (method, d) from each method's ranges, poor ones stopped early by ASHA, "
                   "the best on validation rerun with --seeds seeds; 0 = each method's grid "
                   "(default: the profile's: quick 9, paper 12, smoke 0)")
    p.add_argument("--search", choices=planner.SEARCHES, default=None, help="how a cell's "
                   "configurations are narrowed: halving (synchronous successive halving: rungs "
                   "at 1/9, 1/3 and all of the budget, promotions decided when a whole rung has "
                   "reported, so independent of the order trials end in; then the widening "
                   "rule) or asha (Ray Tune's asynchronous rule, stopping poor trials as they "
                   "report; the protocol of the folders committed before the convergence rule). "
                   "Default: the profile's (halving)")
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
                   "and profile whose --out this is: the plan minus its ledger runs, finished "
                   "trials are kept")
    p.add_argument("--reuse", action="append", default=[], metavar="FOLDER",
                   help="a sweep folder of the same suite, profile and data (plan.json + "
                   "records.jsonl, e.g. the committed tables/results/mnist_halves-quick): its "
                   "trials whose identity matches (method, d, parameters, seed, epochs, "
                   "precision, the objective's code, the data) are not rerun, and its other "
                   "methods stand in this sweep's tables, so `--methods mine --reuse FIELD` runs "
                   "only your method's trials against the field; repeatable")
    p.add_argument("--epochs", type=whole_number(1), default=None,
                   help="override the profile's epochs "
                   "(for every d)")
    p.add_argument("--precision", default=None, choices=PRECISIONS, help="the "
                   "networks' arithmetic (two-view suites): fp32 or bf16 mixed precision "
                   "(default: the profile's: bf16 for quick, fp32 otherwise; "
                   "bf16: bf16 matmuls, fp32 weights, objectives unchanged; see BENCHMARKS.md)")
    add_suite_options(p, suites)
    return p.parse_args(argv)


def parse_strengths(text: str | None) -> list | None:
    """--strengths: None (the search or each method's grid), [None] for 'default' (each method
    at its registry default: a trial given no strength takes it), or the numbers given."""
    if text is None:
        return None
    return [None] if text.strip() == "default" else _csv_list(text, _finite, "strengths")


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


def main(argv=None) -> int:
    return run_cli(lambda argv: _main(parse_args(argv)), argv)


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
    strengths = parse_strengths(args.strengths)
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
    options = suite_options(args, suite)  # --data, --mnist-dir, ...: those it declares
    if args.precision is not None:
        options["precision"] = args.precision
    if args.epochs is not None:
        options["epochs"] = args.epochs
    for folder in args.reuse:
        read_folders([folder])  # a folder that is not a sweep's: one line, before any work
    suite.check_inputs(options)  # e.g. COCO root and weights: fail before any work

    from harness import tune as tune_runner  # Ray is imported only for sweeps
    try:
        # The profile and precision follow from the cluster's GPUs. A local run reads them
        # without Ray, so everything below is checked before Ray starts; a cluster is joined
        # first, as only it knows them.
        resources = (connect(tune_runner, args.address) if args.address else
                     {"CPU": os.cpu_count() or 1, "GPU": torch_gpus()})
        gpus = float(resources.get("GPU", 0))
        profile = args.profile or ("paper" if gpus > 0 else "quick")
        gpus_per_trial = trial_gpus(args.gpus_per_trial, gpus)
        precision_note = fall_back_from_emulated_bf16(args, suite, profile, gpus_per_trial,
                                                      options)
        dims, n_search, seeds = plan_counts(args, suite, profile, strengths)
        search = args.search or suite.profile(profile).search
        data = suite.load_data(profile, options)  # a data error stops here, before writes
        # The one plan of the sweep: every configuration is validated here, and a field of
        # another protocol or other data is refused, in one line.
        plan = planner.make_plan(suite, profile, methods, dims, strengths, n_search, seeds,
                                 sweep_folder(out, suite.name, profile) / "checkpoints", options,
                                 data_digest(data), search)
        check_mergeable(plan, [Path(f) for f in args.reuse])
        # the store last (bad input makes none), and before Ray: an unusable one is one line
        tracking.open_client(args.mlflow_uri or tracking.default_uri(out),
                             artifact_dir=out / "mlartifacts")
        if not args.address:
            connect(tune_runner, None)
        why = "given" if args.profile else ("the cluster has a GPU" if gpus else "no GPU in the cluster")
        print(f"profile: {profile} ({why}); cluster: {resources.get('CPU', 0):.0f} CPUs, "
              f"{gpus:.0f} GPUs", flush=True)
        if precision_note:
            print(precision_note, flush=True)
        return run_sweep(SweepRequest(
            suite=suite, strengths=strengths, out=out, options=options, plan=plan, data=data,
            resume=args.resume,
            reuse=[Path(f) for f in args.reuse], storage=args.storage,
            mlflow_uri=args.mlflow_uri, address=args.address, gpus_per_trial=gpus_per_trial,
            cpus_per_trial=args.cpus_per_trial, max_concurrent=args.max_concurrent,
            fresh_workers=args.fresh_worker_per_trial), started)
    finally:
        tune_runner.shutdown()


def connect(tune_runner, address: str | None) -> dict:
    """Join the cluster at `address`, or start a local Ray on this machine's CPUs."""
    try:
        return tune_runner.connect(address, num_cpus=None if address else os.cpu_count())
    except tune_runner.ClusterError as err:
        raise UsageError(str(err)) from None


def torch_gpus() -> int:
    """The GPUs a local Ray would find (it counts the same CUDA devices)."""
    import torch
    return torch.cuda.device_count()


def fall_back_from_emulated_bf16(args, suite, profile: str, gpus_per_trial: float,
                                 options: dict) -> str:
    """Where the profile's bf16 would be emulated on CPU (~10x slower), train in fp32 unless
    --precision bf16 insists (then warn). Returns the line to print, or ""."""
    precision = args.precision or suite.profile(profile).precision
    if "bf16" not in suite.precisions:
        return ""
    if args.precision is None and precision == "bf16" and gpus_per_trial == 0 \
            and not native_bf16_cpu():  # the profile's default, where it would only cost time
        options["precision"] = "fp32"
        return (f"precision: fp32 (the profile's {EMULATED_BF16}; the quick tables agree "
                f"within seed noise in either; --precision bf16 insists)")
    warn_emulated_bf16(precision, gpus_per_trial)
    return ""


def plan_counts(args, suite, profile: str, strengths) -> tuple[list[int], int, int]:
    """(dims, search trials per (method, d), seeds) from the flags, else the profile's."""
    dims = (_csv_list(args.dims, positive_int, "dims") if args.dims is not None
            else list(suite.dims_for(profile)))
    prof = suite.profile(profile)
    n_search = 0 if strengths is not None or suite.family != "two_view" else (
        args.search_trials if args.search_trials is not None else prof.search_trials)
    return dims, n_search, args.seeds or prof.seeds


if __name__ == "__main__":
    sys.exit(main())
