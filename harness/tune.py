"""The only place that imports Ray: schedules a suite's trials over a grid with Ray Tune.

Ray is a scheduler here, nothing more: every trial is `Suite.trial`, which also runs without
Ray (`python -m harness.train`). The data go into the object store once
(`tune.with_parameters`).

Checkpoints: a trial saves its state into a local folder (`harness.loop.Checkpoints`, the same
code as the single-trial CLI) and reports that folder to Ray Tune at every validation pass
(`tune.report(..., checkpoint=...)`), which copies it to the sweep's storage (`--storage`: a
shared folder or a bucket). A retried trial (a killed worker, a lost node) gets its last
reported checkpoint back from `tune.get_checkpoint()`; a rerun sweep (`--resume`, a new Tuner)
finds it in the storage under the trial's name. Either is copied into the local folder, where
the loop restores it, wherever the trial now runs.
Methods and suites registered outside this package (tests, plug-ins) travel with the trials
(pickled by value) and are registered in the worker before it runs one.
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

from harness import registry
from harness.common import HarnessError, TrialDiverged, first_line
from harness.record import TrialRecord

# The classic reporter honours verbose=0 (no configuration box, no per-trial tables).
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

import ray  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune import Checkpoint  # noqa: E402


class ClusterError(HarnessError, RuntimeError):
    pass


def connect(address: str | None, num_cpus: int | None = None, timeout_s: float = 60.0) -> dict:
    """Start a local Ray (address None) or join a cluster; a bounded wait, never a hang."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                  configure_logging=True)
    if address:
        if address != "auto" and not address.startswith("ray://"):
            _check_reachable(address, timeout_s=min(timeout_s, 10.0))
        kwargs["address"] = address
    else:
        # "local" starts a fresh instance even where a `ray start` cluster runs on this machine
        # (ray.init() would join that one and refuse num_cpus); RAY_ADDRESS still wins.
        kwargs["address"] = os.environ.get("RAY_ADDRESS") or "local"
        if kwargs["address"] == "local":
            kwargs["num_cpus"] = num_cpus
    # ray.init must run on the main thread; the TCP probe above bounds the wait for a dead
    # address, and Ray's own GCS timeout bounds the rest.
    os.environ.setdefault("RAY_gcs_rpc_server_connect_timeout_s", str(int(timeout_s)))
    try:
        ray.init(**kwargs)
    except Exception as err:  # reported as one line
        where = address or "a local Ray"
        raise ClusterError(f"cannot connect to {where}: {first_line(err)}; check "
                           f"--address (host:port of the head's GCS, e.g. 10.0.0.1:6379)") from None
    return ray.cluster_resources()


def _check_reachable(address: str, timeout_s: float) -> None:
    import socket
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or address, int(port or 6379)), timeout=timeout_s).close()
    except (OSError, ValueError) as err:
        raise ClusterError(f"cannot reach Ray at --address {address}: {err}; start the head with "
                           f"`ray start --head` or fix the address") from None


def shutdown() -> None:
    if ray.is_initialized():
        ray.shutdown()


def cluster_gpus() -> float:
    return float(ray.cluster_resources().get("GPU", 0))


def _trainable(config: dict, data=None, suite=None, specs=()):
    """One Tune trial: run the trial, report validation rows as they come and the record last."""
    import torch
    torch.set_num_threads(max(1, int(config.get("cpus_per_trial", 1))))
    for spec in specs:  # methods the worker's own imports do not register
        registry.register(spec, replace=True)
    trial = config["trial"]
    local = Path(trial["checkpoint_dir"])
    local.mkdir(parents=True, exist_ok=True)
    _restore_reported_checkpoint(local, trial)
    # The pid lets an operator (or a test) find and kill this trial's worker.
    (local / "worker.pid").write_text(str(os.getpid()))

    def report(epoch, row):
        metrics = {"epoch": epoch, "val_corr": row["val_corr"], "final": ""}
        if any(local.rglob("*.pt")):  # the loop has just saved its state there
            (local / PROGRESS_FILE).write_text(json.dumps({"epoch": epoch}))
            tune.report(metrics, checkpoint=Checkpoint.from_directory(str(local)))
        else:
            tune.report(metrics)

    try:
        record = suite.trial(trial, data=data, checkpoint_dir=trial["checkpoint_dir"],
                             report=report, log=lambda msg: None)
    except TrialDiverged as err:  # a diverged configuration is a result, not a crash to retry
        record = _identity(trial, status="diverged", reason=str(err))
    tune.report({"final": json.dumps(record.to_dict()), "epoch": -1, "val_corr": float("nan")})


PROGRESS_FILE = "progress.json"  # {"epoch": n} of the checkpoint beside it


def _epoch_of(folder: Path) -> int:
    try:
        return int(json.loads((folder / PROGRESS_FILE).read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return -1


def trial_dirname(name: str) -> str:
    """The trial's folder in the storage: its name, made safe for any file system."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name)


def _restore_reported_checkpoint(local: Path, trial: dict) -> None:
    """Put the trial's latest reported checkpoint into `local`, if it is newer than what is
    there: Ray's (this Tuner's retry) or else one in the storage from an earlier sweep run."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None and trial.get("storage"):
        checkpoint = _stored_checkpoint(trial["storage"], trial["experiment"], trial["name"])
    if checkpoint is None:
        return
    with checkpoint.as_directory() as folder:
        if _epoch_of(Path(folder)) > _epoch_of(local):
            shutil.copytree(folder, local, dirs_exist_ok=True)


def _stored_checkpoint(storage: str, experiment: str, name: str):
    """The checkpoint of highest epoch that an earlier run of this sweep reported for trial
    `name` (`<storage>/<experiment>/<name>-<id>/checkpoint_*`), or None."""
    import pyarrow.fs as pafs
    try:
        fs, root = pafs.FileSystem.from_uri(storage)
        prefix = trial_dirname(name) + "-"
        best, best_epoch = None, -1
        for trial_dir in fs.get_file_info(pafs.FileSelector(f"{root}/{experiment}",
                                                             allow_not_found=True)):
            if trial_dir.type != pafs.FileType.Directory or not trial_dir.base_name.startswith(prefix):
                continue
            for ckpt in fs.get_file_info(pafs.FileSelector(trial_dir.path)):
                if not ckpt.base_name.startswith("checkpoint_"):
                    continue
                try:
                    with fs.open_input_stream(f"{ckpt.path}/{PROGRESS_FILE}") as fh:
                        epoch = int(json.loads(fh.read())["epoch"])
                except (OSError, ValueError, KeyError):
                    continue
                if epoch > best_epoch:
                    best, best_epoch = ckpt.path, epoch
        return None if best is None else Checkpoint(best, filesystem=fs)
    except (OSError, ValueError) as err:  # storage unreachable: the trial starts from what it has
        print(f"warning: cannot read checkpoints under {storage}: {first_line(err)}",
              file=sys.stderr)
        return None


def _identity(trial: dict, **fields) -> TrialRecord:
    """The record of a trial that produced none of its own (diverged, failed)."""
    return TrialRecord.of(trial, **fields)


class PerCellASHA(tune.schedulers.FIFOScheduler):
    """ASHA (Li et al. 2020, Ray Tune's AsyncHyperBandScheduler) within each (method, d) cell
    of a search: a trial competes only with the trials of its own cell, whose epoch budget
    (max_t) and first rung (grace period = the trial's validation cadence) it brings in its
    config. One Ray ASHA per cell; rungs at grace·3^k epochs; stops on `val_corr` only."""

    def __init__(self, reduction_factor: float = 3):
        super().__init__()
        self.reduction_factor = reduction_factor
        self.cells: dict = {}

    def _asha(self, trial):
        cfg = trial.config["trial"]
        key = (cfg["method"], cfg["d"])
        if key not in self.cells:
            self.cells[key] = tune.schedulers.AsyncHyperBandScheduler(
                time_attr="epoch", metric="val_corr", mode="max", max_t=cfg["epochs"],
                grace_period=cfg["eval_every"], reduction_factor=self.reduction_factor)
        return self.cells[key]

    def on_trial_add(self, tune_controller, trial):
        self._asha(trial).on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result):
        if result.get("final") or result.get("epoch", -1) < 1:  # the record, not a rung
            return self.CONTINUE
        if result["epoch"] >= trial.config["trial"]["epochs"]:  # its budget is spent: let it
            return self.CONTINUE                                # report its record

        return self._asha(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result):
        asha = self._asha(trial)
        if result and not result.get("final"):
            asha.on_trial_complete(tune_controller, trial, result)
        else:
            asha.on_trial_remove(tune_controller, trial)

    def on_trial_remove(self, tune_controller, trial):
        self._asha(trial).on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return f"PerCellASHA over {len(self.cells)} cells"


class SweepCallback(tune.Callback):
    """Hands each finished trial to `on_result` and prints a compact live view."""

    def __init__(self, total: int, on_result, print_every_s: float = 30.0, stream=None,
                 headline=None, leader_metric: str | None = None, protocol_eta=None):
        self.total, self.on_result, self.stream = total, on_result, stream
        # (in_flight: {running trial: its last reported epoch}) -> text: the whole
        # protocol's time left
        self.protocol_eta = protocol_eta
        self.headline = headline or (lambda m: "")
        self.leader_metric = leader_metric  # ranks the "best so far per d" part of each line
        self.done = self.failed = self.diverged = self.stopped = 0
        self.running: set[str] = set()
        self.best: dict = {}
        self.best_val: dict = {}  # trial name -> best val_corr so far (an early-stopped trial's)
        self.print_every_s, self.last_print = print_every_s, 0.0
        self.started = time.time()
        self.view_failed = False  # the live view raised once (logged once, then quiet)

    def _quietly(self, show, *args) -> None:
        """Run a part of the live view: an error there is the view's, never the trial's (Ray
        would count a raising callback as the trial failing and retry it). It is logged
        once and the sweep goes on."""
        try:
            show(*args)
        except Exception as err:  # noqa: BLE001 - any reporting error: log, never fail
            if not self.view_failed:
                self.view_failed = True
                try:
                    print(f"warning: the progress view failed ({type(err).__name__}: "
                          f"{first_line(err)}); the sweep goes on and every result is kept",
                          file=self.stream or sys.stderr, flush=True)
                except Exception:  # noqa: BLE001 - an unwritable stream: nothing to say it on
                    pass

    def eta(self) -> str:
        """Time left, estimated from the finished trials: their mean wall time per trial
        (as the sweep has run them, concurrency included) times the trials left."""
        ended = self.done + self.failed
        if not ended or ended >= self.total:
            return ""
        left_s = (time.time() - self.started) / ended * (self.total - ended)
        text = f", ETA {left_s / 60:.0f} min" if left_s >= 60 else f", ETA {left_s:.0f} s"
        whole = self.protocol_eta(self._in_flight()) if self.protocol_eta else ""
        return f"{text} this phase, {whole} in all" if whole else text

    def _line(self, msg: str = "") -> None:
        stopped = f"{self.stopped} stopped early, " if self.stopped else ""
        status = (f"[{self.done + self.failed}/{self.total} ended: "
                  f"{self.done - self.diverged - self.stopped} ok, {stopped}"
                  f"{self.diverged} diverged, {self.failed} failed | {len(self.running)} running"
                  f"{self.eta()}]")
        # stream None: whatever sys.stderr is when printing (Tune pickles its callbacks, and
        # a captured or redirected stderr object may not pickle)
        print(f"{status} {msg}".rstrip(), file=self.stream or sys.stderr, flush=True)
        self.last_print = time.time()

    def _in_flight(self) -> dict:
        """{running trial: the last epoch it reported}"""
        return {name: self.best_val[name][1] for name in self.running if name in self.best_val}

    def _track(self, trials, started=None) -> None:
        # the trial being started may not be RUNNING yet when Tune calls back
        self.running = {t.config["trial"]["name"] for t in trials if t.status == "RUNNING"
                        or t is started}

    def on_trial_start(self, iteration, trials, trial, **info):
        self._quietly(self._track, trials, trial)

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._quietly(lambda: self._line(f"{trial.config['trial']['name']} worker lost: "
                                         f"retrying from its checkpoint"))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._quietly(self._progress, trial, result)

    def _progress(self, trial, result) -> None:
        if result.get("final"):
            return
        name = trial.config["trial"]["name"]
        if result["val_corr"] == result["val_corr"]:  # not NaN
            last = self.best_val.get(name, (-float("inf"), 0))
            self.best_val[name] = (max(last[0], result["val_corr"]), max(last[1], result["epoch"]))
        if time.time() - self.last_print > self.print_every_s:
            self._line(f"{trial.config['trial']['name']} epoch {result['epoch']} "
                       f"val_corr {result['val_corr']:.1f}")

    def _ended(self, trials, trial) -> str:
        name = trial.config["trial"]["name"]
        self._quietly(self._track, trials)
        self.running.discard(name)
        return name

    def on_trial_complete(self, iteration, trials, trial, **info):
        name = self._ended(trials, trial)
        final = (trial.last_result or {}).get("final")
        if final:
            record = TrialRecord.from_dict(json.loads(final))
        elif name in self.best_val and trial.config["trial"].get("phase") == "search":
            value, epoch = self.best_val[name]  # stopped early by the search's scheduler
            record = _identity(trial.config["trial"], status="stopped",
                               reason=f"stopped by ASHA at epoch {epoch}",
                               metrics={"val_corr_best": value, "epochs_run": epoch})
        else:
            record = _identity(trial.config["trial"], status="failed", reason="no result")
        if self.protocol_eta:
            # the running trials as they are now, so that the ETA `on_result` logs for this
            # end is the one this end's line shows (not one from the last line's running set)
            self._quietly(self.protocol_eta, self._in_flight())
        self.on_result(record)  # the result is kept first, whatever the view does below
        self.done += 1
        if record.phase == "search":
            self.stopped += record.status == "stopped"
            self.diverged += record.status == "diverged"
        elif record.status != "ok":
            self.diverged += 1
        self._quietly(self._show, name, record)

    def _show(self, name: str, record: TrialRecord) -> None:
        """The progress lines of a finished trial."""
        for warning in record.warnings:
            self._line(f"{name}: {warning}")
        if record.phase == "search":
            how = {"ok": "ran its budget", "stopped": record.reason}.get(record.status,
                                                                         record.reason)
            self._line(f"{name} val_corr_best "
                       f"{record.metrics.get('val_corr_best', float('nan')):.1f} ({how})")
        elif record.status == "ok":
            m = record.metrics
            best = ""
            if self.leader_metric in m:
                value, d = m[self.leader_metric], record.d
                if value > self.best.get(d, ("", -1e9))[1]:
                    self.best[d] = (record.method, value)
                best = " | best " + ", ".join(f"d={d}: {meth} {v:.1f}"
                                              for d, (meth, v) in sorted(self.best.items()))
            self._line(f"{name} {self.headline(m)} ({record.train_seconds or 0:.0f} s){best}")
            by_reason = {}  # a metric not measurable on these data: which, and why
            for metric, why in (record.unavailable or {}).items():
                by_reason.setdefault(why, []).append(metric)
            for why, names in by_reason.items():
                self._line(f"{name}: {', '.join(names)} not available: {why}")
        else:
            self._line(f"{name} DIVERGED: {record.reason}")

    def on_trial_error(self, iteration, trials, trial, **info):
        name = self._ended(trials, trial)
        self.failed += 1
        err = getattr(trial, "error_file", None)
        reason = "worker failed repeatedly"
        try:
            if err and Path(err).exists():
                lines = [ln for ln in Path(err).read_text().strip().splitlines() if ln.strip()]
                reason = lines[-1] if lines else reason
        except (OSError, UnicodeDecodeError):  # an unreadable error file: the general reason
            pass
        self.on_result(_identity(trial.config["trial"], status="failed", reason=reason))
        self._quietly(lambda: self._line(f"{name} FAILED: {reason}"))


def _by_value(objects) -> None:
    """Let Ray ship the code of methods and suites defined outside installed packages (a test
    file, a plug-in on the driver's path): a worker could not import it by name. Installed
    packages and the standard library are left to the workers' own imports."""
    from ray import cloudpickle
    for obj in objects:
        while isinstance(obj, functools.partial):
            obj = obj.func
        name = getattr(obj, "__module__", "") or ""
        module = sys.modules.get(name)
        if (module is None or name.split(".")[0] in sys.stdlib_module_names
                or name.startswith(("harness", "baselines", "muc2m"))
                or "site-packages" in (getattr(module, "__file__", "") or "")):
            continue
        cloudpickle.register_pickle_by_value(module)


def run_grid(trials: list[dict], data, *, suite, storage: str, on_result,
             gpus_per_trial: float = 0, cpus_per_trial: int = 1,
             max_concurrent: int | None = None, max_failures: int = 2,
             experiment_name: str = "sweep", scheduler=None, fresh_workers: bool = False,
             protocol_eta=None) -> int:
    """Run every trial config of `suite` through Ray Tune (Ray must be connected); returns
    how many trials ended (fewer than given when the sweep was interrupted). `scheduler`: a
    Tune scheduler such as `PerCellASHA()` (default: every trial runs its full budget).

    A worker runs trial after trial (Tune's `reuse_actors`): a new worker process costs
    ~7 s (imports, first calls), more than a smoke trial (BENCHMARKS "Sweep throughput").
    A trial sets everything it depends on (seeds, threads), tested by tests/test_train.py;
    `fresh_workers` gives every trial its own process instead."""
    if not trials:
        return 0
    if gpus_per_trial > 0 and cluster_gpus() == 0:
        raise ClusterError(f"--gpus-per-trial {gpus_per_trial} but the cluster has no GPU; "
                           f"use --gpus-per-trial 0")
    for trial in trials:  # where the trial's checkpoints of an earlier run of this sweep are
        trial.update(storage=storage, experiment=experiment_name)
    specs = registry.external_specs()
    _by_value([fn for spec in specs for fn in spec.code]
              + [suite.run_trial, suite.load_data, suite.render])
    trainable = tune.with_resources(
        tune.with_parameters(_trainable, data=data, suite=suite, specs=specs),
        {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    callback = SweepCallback(len(trials), on_result, headline=suite.headline,
                             leader_metric=suite.leader_metric, protocol_eta=protocol_eta)
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(trials), "cpus_per_trial": cpus_per_trial},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=max_concurrent, scheduler=scheduler,
            reuse_actors=not fresh_workers,
            trial_dirname_creator=lambda t: f"{trial_dirname(t.config['trial']['name'])}-{t.trial_id}"),
        run_config=tune.RunConfig(name=experiment_name, storage_path=storage, verbose=0,
                                  callbacks=[callback],
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                                  failure_config=tune.FailureConfig(max_failures=max_failures)),
    )
    tuner.fit()
    return callback.done + callback.failed

