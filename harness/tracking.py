"""The only place that writes to MLflow.

One experiment per suite, one parent run per sweep (suite × profile), one child run per trial,
named deterministically (`muc2m[d=50,lam=0.005,seed=0]`). Children are written from the
driver in one `log_batch` each, only when a trial has ended, so a killed driver leaves at most
an unfinished child, which `prepare_resume` deletes before the trial reruns.
"""
from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from harness.common import HarnessError, first_line
from harness.record import TrialRecord, git_commit, hardware

# MLflow is imported where a store is opened or written (~2 s): a CLI that stops at a bad flag
# answers without it.
if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

PARENT_RUN_ID_TAG = "mlflow.parentRunId"
GALLERY_ARTIFACT = "gallery.npz"
MAX_BATCH = 900  # MLflow accepts at most 1000 metrics per log_batch


class TrackingError(HarnessError, RuntimeError):
    pass


def retrying(call, *args, attempts: int = 8, retry_on=("locked",), **kwargs):
    """Retry a store call that failed on a busy SQLite file (two sweeps writing at once)."""
    for attempt in range(attempts):
        try:
            return call(*args, **kwargs)
        except Exception as err:  # MLflow wraps sqlite3.OperationalError in its own types
            text = str(err).lower()
            if not any(key in text for key in retry_on) or attempt == attempts - 1:
                raise
            time.sleep(0.2 * 2 ** attempt)


def sqlite_file(uri: str) -> Path | None:
    """The database file of a `sqlite:///PATH` URI; None for any other store."""
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def _connect(uri: str) -> MlflowClient:
    """Open the store; a new SQLite store is created (schema migrations) under a file lock,
    because two processes migrating one new file at once corrupt it."""
    lock_path = None
    db = sqlite_file(uri)
    if db is not None and db.parent.is_dir():
        lock_path = db.with_name(db.name + ".lock")
    with open(lock_path, "w") if lock_path else contextlib.nullcontext() as lock:
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):  # schema chatter
            logging.getLogger(name).setLevel(logging.WARNING)
        from mlflow.tracking import MlflowClient
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)  # opens (and if new, creates) the store
    return client


def default_uri(out_dir: Path) -> str:
    return f"sqlite:///{Path(out_dir).resolve() / 'mlflow.db'}"


def open_client(uri: str, artifact_dir: Path | None = None) -> MlflowClient:
    """A client on `uri`; fails with one clear line if the store cannot be opened.

    A tracking server (http[s]://) gets short HTTP retries (unless the environment sets its
    own): a server that is down makes the driver keep finished trials in its outbox instead
    of blocking for minutes, and its artifact store is the server's (no local location)."""
    if uri.startswith(("http://", "https://")):
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        artifact_dir = None
    try:
        # Two sweeps creating the same new SQLite store race on its schema: retry briefly.
        client = retrying(_connect, uri, retry_on=("locked", "duplicate column", "already exists"),
                          attempts=4)
    except Exception as err:  # MLflow raises many types here; the message is what matters
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TrackingError(f"cannot open the MLflow store {uri!r}: {first}; pass a writable "
                            f"--mlflow-uri such as sqlite:///runs/mlflow.db") from None
    client._artifact_dir = artifact_dir  # where new experiments keep their artifacts
    return client


# MLflow ≥ 3 opens an experiment without this tag in its GenAI view; ours are training runs.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"


def experiment_id(client: MlflowClient, suite: str) -> str:
    exp = client.get_experiment_by_name(suite)
    if exp is not None:
        if exp.tags.get(EXPERIMENT_KIND_TAG) is None:  # a store made before the tag was set
            client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return exp.experiment_id
    location = None
    if getattr(client, "_artifact_dir", None) is not None:
        location = Path(client._artifact_dir).resolve().as_uri()
    try:
        return client.create_experiment(suite, artifact_location=location,
                                        tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    except Exception:  # another sweep created it first
        return client.get_experiment_by_name(suite).experiment_id


def find_sweep(client: MlflowClient, suite: str, profile: str):
    """The most recent parent run of (suite, profile), or None."""
    exp = client.get_experiment_by_name(suite)
    if exp is None:
        return None
    runs = client.search_runs([exp.experiment_id],
                              f"tags.kind = 'sweep' and tags.profile = '{profile}'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def run_by_id(client: MlflowClient, run_id: str):
    """The run `run_id`, or None if the store has no such run."""
    from mlflow.exceptions import MlflowException
    try:
        return client.get_run(run_id)
    except MlflowException as err:
        if err.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        return None


def start_sweep(client: MlflowClient, suite: str, profile: str, params: dict):
    from mlflow.entities import Param
    exp_id = experiment_id(client, suite)
    run = client.create_run(exp_id, run_name=f"{suite}-{profile}",
                            tags={"kind": "sweep", "suite": suite, "profile": profile,
                                  "git_commit": git_commit(), "hardware": hardware()})
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
    share_views(client, run)  # what `runs_url` opens
    return run


def child_runs(client: MlflowClient, parent) -> list:
    """All trial runs of a sweep (every status), newest first: those tagged with its run id
    (`SWEEP_TAG`), and those of a store written before trials were top-level runs (nested
    under the sweep's run)."""
    runs = {}
    for key in (SWEEP_TAG, PARENT_RUN_ID_TAG):
        for run in client.search_runs([parent.info.experiment_id],
                                      f"tags.`{key}` = '{parent.info.run_id}'",
                                      max_results=50000, order_by=["attributes.start_time DESC"]):
            runs.setdefault(run.info.run_id, run)
    return sorted(runs.values(), key=lambda r: r.info.start_time or 0, reverse=True)


def prepare_resume(client: MlflowClient, parent) -> dict:
    """Finished children by run name (the newest of each); unfinished ones (a driver killed
    while logging, a server gone mid-write) and older duplicates are deleted, so that every
    trial is in the store exactly once."""
    finished = {}
    for run in child_runs(client, parent):
        name = run.info.run_name
        failed = run.data.tags.get("status") == "failed"  # a crash, not a result: run it again
        if run.info.status == "FINISHED" and not failed and name not in finished:
            finished[name] = run
        else:
            client.delete_run(run.info.run_id)
    return finished


SUPERSEDED_TAG = "superseded"


def supersede(client: MlflowClient, parent, plan: set[str]) -> list[str]:
    """Tag the finished children that the current plan no longer contains (a method's search
    range or a flag changed before --resume), so that the tables leave them out; they stay in
    the store, nothing computed is lost, and one that a later plan contains again is untagged.
    Returns the names newly tagged."""
    stale = []
    for run in child_runs(client, parent):
        tagged = run.data.tags.get(SUPERSEDED_TAG) == "true"
        if run.info.status != "FINISHED" or tagged == (run.info.run_name not in plan):
            continue
        retrying(client.set_tag, run.info.run_id, SUPERSEDED_TAG, str(not tagged).lower())
        if not tagged:
            stale.append(run.info.run_name)
    return stale


# A trial is a top-level run tagged with its sweep's run id, not a child nested under it: the
# MLflow UI opens a parent run collapsed (its shared views cannot expand it), which hid every
# trial from the runs table and the charts until clicked open.
SWEEP_TAG = "sweep_run_id"


def log_trial(client: MlflowClient, parent, record: TrialRecord) -> str:
    """One run for a finished (or diverged/failed) trial, in batches, with MLflow's own
    conventions: source tags (Source column), its data as a dataset input (Dataset column),
    the system metrics sampled while it ran (`system/...`, by step) and, for a reported
    trial, its two view encoders as logged models (Models column)."""
    from mlflow.entities import Metric, Param, RunTag
    now = int(time.time() * 1000)
    tags = {SWEEP_TAG: parent.info.run_id, "suite": parent.data.tags.get("suite", ""),
            "profile": record.profile, "status": record.status,
            "cell": record.name.rsplit(",seed=", 1)[0] + ("]" if ",seed=" in record.name else ""),
            "phase": record.phase or "reported", **source_tags(record)}
    if record.reason:
        tags["failure_reason"] = record.reason[:4000]
    if record.unavailable:  # metrics it could not measure, and why
        tags["unavailable"] = "; ".join(f"{k}: {v}" for k, v in record.unavailable.items())[:4000]
    if record.warnings:
        tags["warnings"] = "\n".join(record.warnings)[:4000]
    run = retrying(client.create_run, parent.info.experiment_id, run_name=record.name, tags=tags)
    metrics = [Metric(k, v, now, step) for k, v, step in record.mlflow_metrics()]
    retrying(client.log_batch, run.info.run_id,
             params=[Param(k, str(v)) for k, v in record.mlflow_params().items()],
             tags=[RunTag(k, v) for k, v in tags.items()])
    metrics += system_metrics(record, now)
    for i in range(0, len(metrics), MAX_BATCH):
        retrying(client.log_batch, run.info.run_id, metrics=metrics[i:i + MAX_BATCH])
    if record.dataset:
        retrying(log_dataset, client, run.info.run_id, record.dataset)
    if record.gallery:  # saliency suites: maps of fixed test items, for the gallery PNG
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / GALLERY_ARTIFACT
            path.write_bytes(base64.b64decode(record.gallery))
            retrying(client.log_artifact, run.info.run_id, str(path))
    if record.encoder_path and record.status == "ok" and record.phase != "search":
        try:
            from harness import mlflow_extras
            mlflow_extras.log_encoders(client, run.info.run_id, record.encoder_path)
        except Exception as err:  # noqa: BLE001 - a file gone (another machine) or a model
            # MLflow cannot save: the trial's results are logged all the same, and say why
            retrying(client.set_tag, run.info.run_id, "models_not_logged", first_line(err)[:4000])
    retrying(client.set_terminated, run.info.run_id, "FINISHED")
    return run.info.run_id


@functools.lru_cache(maxsize=8)
def _full_commit(short: str) -> str:
    """The full hash of a (short) commit of this repository; `short` if git cannot tell."""
    import subprocess
    try:
        out = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{short}^{{commit}}"],
                             capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    return out or short


def source_tags(record: TrialRecord) -> dict:
    """MLflow's standard source tags: the Source column shows the entry point, with the commit
    the trial ran at."""
    import getpass
    tags = {"mlflow.source.type": "LOCAL", "mlflow.source.name": "harness/run.py"}
    if record.git_commit and record.git_commit != "unknown":
        tags["mlflow.source.git.commit"] = _full_commit(record.git_commit)
    try:
        tags["mlflow.user"] = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment
        pass
    return tags


def system_metrics(record: TrialRecord, now_ms: int) -> list:
    """The record's system samples as `system/...` metrics, one step per sample, timed back
    from `now_ms` (the driver logs them after the trial)."""
    from mlflow.entities import Metric

    from harness import mlflow_extras
    points = mlflow_extras.system_metric_points(record.system_metrics or [])
    last = max((t for *_, t in points), default=0)
    return [Metric(k, v, now_ms - (last - t), step) for k, v, step, t in points]


def log_dataset(client: MlflowClient, run_id: str, info: dict) -> None:
    """The trial's data as a dataset input of its run (name, digest, source)."""
    from mlflow.entities import DatasetInput, InputTag

    from harness import mlflow_extras
    dataset = mlflow_extras.mlflow_dataset(info)._to_mlflow_entity()
    client.log_inputs(run_id, datasets=[DatasetInput(dataset, tags=[
        InputTag("mlflow.data.context", "train/val/test")])])


SWEEP_RUNS = "mlflow_runs.json"  # in a sweep's folder: its run in each store it is mirrored to


class Mirror:
    """The MLflow copy of a sweep's ledger: `sync` logs every ledger record the store does not
    hold yet, once. A store that is unreachable for a while (a tracking server restarting)
    costs nothing: the records wait in the ledger, and a later `sync`, `--resume` or
    `python -m harness.mirror` sends them."""

    def __init__(self, client: MlflowClient, parent, uri: str, warn=None):
        self.client, self.parent, self.uri = client, parent, uri
        self.warn = warn or (lambda msg: print(msg, flush=True))
        self.down_since: float | None = None
        self.logged: set[str] | None = None  # names the store holds (read once, then kept)

    @property
    def sweep_id(self) -> str:
        return self.parent.info.run_id

    @classmethod
    def open(cls, uri: str, artifact_dir: Path, suite: str, profile: str, folder: Path,
             params: dict, resume: bool) -> "Mirror":
        """The sweep's parent run in the store `uri`: the one its folder records for that
        store when resuming (else a new one), recorded in `<folder>/mlflow_runs.json`
        ({store URI: run id}: one ledger may be mirrored to several stores)."""
        client = open_client(uri, artifact_dir=artifact_dir)
        recorded = Path(folder) / SWEEP_RUNS
        runs = json.loads(recorded.read_text()) if recorded.exists() else {}
        parent = run_by_id(client, runs[uri]) if resume and uri in runs else None
        if parent is None:
            parent = start_sweep(client, suite, profile, params)
        runs[uri] = parent.info.run_id
        recorded.write_text(json.dumps(runs, indent=1, sort_keys=True) + "\n")
        return cls(client, parent, uri)

    def sync(self, records: list[TrialRecord]) -> int:
        """Log the records the store lacks; returns how many are still not in it."""
        pending = [r for r in records if self.logged is None or r.name not in self.logged]
        try:
            if self.logged is None or self.down_since is not None:  # which got through?
                self.logged = set(prepare_resume(self.client, self.parent))
                pending = [r for r in records if r.name not in self.logged]
            for record in pending:
                log_trial(self.client, self.parent, record)
                self.logged.add(record.name)
        except Exception as err:  # noqa: BLE001 - any store failure: the ledger keeps them
            if self.down_since is None:
                self.down_since = time.time()
                self.warn(f"warning: the MLflow store is unreachable ({first_line(err)}); "
                          f"finished trials are kept in the sweep's ledger (records.jsonl) "
                          f"and mirrored when it is back (or with --resume)")
            return len([r for r in records if r.name not in (self.logged or set())])
        if self.down_since is not None:
            self.warn(f"the MLflow store is back after {time.time() - self.down_since:.0f} s; "
                      f"every finished trial is logged")
            self.down_since = None
        return 0

    def supersede(self, plan: set[str]) -> list[str]:
        try:
            return supersede(self.client, self.parent, plan)
        except Exception:  # noqa: BLE001 - the tables do not depend on the mirror
            return []

    def finish(self, records: list[TrialRecord], artifacts: list[Path]) -> bool:
        """Mirror the last records (waiting a minute at most for a store that is away), the
        tables as the sweep run's artifacts, and end it; False if the store stayed away."""
        for wait_s in (0, 5, 10, 20, 30):
            time.sleep(wait_s)
            if not self.sync(records):
                break
        else:
            return False
        try:
            end_sweep(self.client, self.parent, artifacts)
        except Exception as err:  # noqa: BLE001
            self.warn(f"warning: the sweep's tables were not attached in MLflow "
                      f"({first_line(err)}); they are in its folder")
        return True


def end_sweep(client: MlflowClient, parent, artifacts: list[Path], status: str = "FINISHED"):
    for path in artifacts:
        client.log_artifact(parent.info.run_id, str(path))
    client.set_terminated(parent.info.run_id, status)


def ui_command(uri: str) -> str:
    """The one command that starts the MLflow UI on this store and prints its sweeps' URLs."""
    return f"python -m harness.ui {uri}"


UI_HOST, UI_PORT = "127.0.0.1", 5000
SHARED_VIEW_TAG = "mlflow.sharedViewState."  # + key: an experiment tag the UI reads a view from
VIEW_COLUMNS = [("attributes", "Dataset"), ("attributes", "Source"), ("attributes", "Models"),
                ("params", "method"), ("params", "d"), ("params", "seed"),
                ("metrics", "corr_heldout"), ("metrics", "recog_acc"),
                ("metrics", "val_corr_best"), ("metrics", "train_seconds")]


def view_state(sweep_run_id: str, seeds_grouped: bool = False) -> dict:
    """The runs view of one sweep, as the MLflow UI's shared view state: the sweep's trials
    (best corr_heldout first) with the compared metrics as columns, all of them in the charts
    (the UI's default charts only the first 10); `seeds_grouped`: one row per cell (trials
    differing only in their seed), mean over seeds, min-max band in the charts."""
    return {
        "searchFilter": f"tags.{SWEEP_TAG} = '{sweep_run_id}'",
        "orderByKey": "metrics.`corr_heldout`", "orderByAsc": False,
        "startTime": "ALL", "lifecycleFilter": "Active", "modelVersionFilter": "All Runs",
        "datasetsFilter": [],
        "selectedColumns": [f"{kind}.`{key}`" for kind, key in VIEW_COLUMNS],
        "runsHiddenMode": "SHOW_ALL", "hideEmptyCharts": True, "useGroupedValuesInCharts": True,
        "groupBy": ({"aggregateFunction": "average",
                     "groupByKeys": [{"mode": "tag", "groupByData": "cell"}]}
                    if seeds_grouped else None),
        "groupsExpanded": {}}


def view_key(sweep_run_id: str, seeds_grouped: bool = False) -> str:
    return f"sweep-{sweep_run_id}" + ("-seeds" if seeds_grouped else "")


def share_views(client: MlflowClient, parent) -> None:
    """Store the sweep's two views (trials; seeds grouped) in its experiment, where the UI
    opens them from `runs_url`."""
    for grouped in (False, True):
        retrying(client.set_experiment_tag, parent.info.experiment_id,
                 SHARED_VIEW_TAG + view_key(parent.info.run_id, grouped),
                 json.dumps(view_state(parent.info.run_id, grouped)))


def runs_url(parent, host: str = UI_HOST, port: int = UI_PORT, charts: bool = False,
             seeds_grouped: bool = False) -> str:
    """The MLflow UI's address of a sweep's runs: the experiment's Runs tab in the "Model
    training" workflow (`workflowType`: the sidebar's GenAI / Model training switch, which is
    GenAI on a first visit), in the sweep's shared view (`share_views`), as the table or
    (`charts`) as the chart view."""
    from urllib.parse import urlencode
    query = {"workflowType": "machine_learning", "compareRunsMode": "CHART" if charts else "TABLE",
             "viewStateShareKey": view_key(parent.info.run_id, seeds_grouped)}
    return (f"http://{host}:{port}/#/experiments/{parent.info.experiment_id}/runs?"
            f"{urlencode(query)}")
