"""The one trial record: identity, parameters, metrics, provenance and status of a trial.

A trial returns a `TrialRecord`; Ray carries it as JSON (`to_dict`/`from_dict`); the sweep's
ledger keeps it whole, one JSON line a trial (`harness.ledger`); the tables and `results.csv`
read it from there (`table_row` / `csv_row`); `tracking` mirrors it to MLflow
(`mlflow_params`, `mlflow_metrics`). No other module spells out the fields of a trial.
"""
from __future__ import annotations

import functools
import math
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

IDENTITY = ("name", "method", "d", "seed", "status", "strength_name", "strength")
SETTINGS = ("profile", "epochs", "batch", "lr", "precision", "hidden", "phase")
PROVENANCE = ("device", "git_commit")
TERM_PREFIX = "term_"  # per-epoch curves of the named loss terms (not summary metrics)
CURVES = {"val_corr": "val_corr", "loss": "train_loss"}  # history key -> MLflow metric


@dataclass
class TrialRecord:
    name: str
    method: str
    d: int
    seed: int = 0
    profile: str = ""
    strength_name: str | None = None
    strength: float | None = None
    batch: int | None = None
    lr: float | None = None
    epochs: int | None = None           # the cap, with a convergence rule
    patience: int = 0                   # validation passes without gain before it stops
    precision: str = "fp32"
    hidden: str = ""                    # the encoders' hidden widths, e.g. "500,300"
    phase: str = ""                     # "search": a search trial (validation only, never
                                        # in the tables' cells); "": a reported trial
    params: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    history: list = field(default_factory=list)  # validation rows: epoch, loss, terms, val_*
    train_seconds: float | None = None
    device: str = ""
    status: str = "ok"                  # ok | diverged | failed | stopped (ASHA, search only)
    reason: str = ""
    warnings: list = field(default_factory=list)  # e.g. a checkpoint passed over
    unavailable: dict = field(default_factory=dict)  # metric -> why it could not be measured
                                                     # (one class, too few test pairs, ...)
    replicates: list = field(default_factory=list)  # a reported trial's bootstrap replicates
                                                    # of corr_heldout over the test pairs
                                                    # (harness.paired); in the ledger only,
                                                    # not a metric: no CSV column, no MLflow
    git_commit: str = ""
    versions: dict = field(default_factory=dict)
    hardware: str = ""
    gallery: str | None = None          # saliency: base64 .npz of fixed test items' maps
    dataset: dict = field(default_factory=dict)  # name, digest, source (harness.mlflow_extras)
    system_metrics: list = field(default_factory=list)  # samples of MLflow's system metrics
    encoder_path: str = ""              # a reported trial's saved view encoders (a file path)
    run_id: str = ""                    # set when read back from the store
    end_time: int = 0

    # ---------------------------------------------------------------------------- creation
    @classmethod
    def of(cls, cfg: dict, **fields_) -> "TrialRecord":
        """A record for a resolved configuration (`Suite.resolve`), with provenance."""
        names = {f.name for f in fields(cls)}
        base = {k: v for k, v in cfg.items() if k in names}
        if isinstance(base.get("hidden"), (tuple, list)):
            base["hidden"] = ",".join(str(h) for h in base["hidden"])
        record = cls(**{**base, **fields_})
        record.git_commit = record.git_commit or git_commit()
        record.versions = record.versions or library_versions()
        record.hardware = record.hardware or hardware()
        return record

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrialRecord":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    # ------------------------------------------------------------------------------ MLflow
    def mlflow_params(self) -> dict:
        return {"method": self.method, "d": self.d, "seed": self.seed, "profile": self.profile,
                "strength_name": self.strength_name, "strength": self.strength,
                "batch": self.batch, "lr": self.lr, "epochs": self.epochs,
                "precision": self.precision, "hidden": self.hidden,
                "git_commit": self.git_commit,
                "device": self.device, "hardware": self.hardware,
                **({"phase": self.phase} if self.phase else {}),
                **{f"param_{k}": v for k, v in self.params.items()},
                **{f"version_{k}": v for k, v in self.versions.items()}}

    def mlflow_metrics(self) -> list[tuple[str, float, int]]:
        """(key, value, step): the summary metrics at step 0, then one point per validation
        pass of every curve (validation metric, training loss, each named loss term)."""
        out = [(k, float(v), 0) for k, v in self.metrics.items()]
        if self.train_seconds is not None:
            out.append(("train_seconds", float(self.train_seconds), 0))
        for row in self.history:
            step = int(row["epoch"])
            for key, metric in CURVES.items():
                if key in row:
                    out.append((metric, float(row[key]), step))
            for key, value in row.get("terms", {}).items():
                out.append((TERM_PREFIX + key, float(value), step))
        return out

    # ------------------------------------------------------------------------------ tables
    def table_row(self, columns: tuple = ()) -> dict:
        """Flat row for the tables: identity, settings, provenance, then the suite's metric
        `columns` (NaN where absent: a diverged trial keeps its cells), then its other metrics."""
        row = {k: getattr(self, k) for k in IDENTITY + SETTINGS + PROVENANCE}
        row.update(reason=self.reason, run_id=self.run_id, end_time=self.end_time)
        row.update({k: self.metrics.get(k, math.nan) for k in columns})
        # a live record keeps its time apart (the store's copy has it among the metrics)
        if self.train_seconds is not None and "train_seconds" not in self.metrics:
            row["train_seconds"] = self.train_seconds
        row.update({k: v for k, v in self.metrics.items() if k not in row})
        row.update({f"param_{k}": v for k, v in self.params.items()})  # a search's choice
        return row

    def csv_row(self, columns: tuple = ()) -> dict:
        """`table_row` plus the method's parameters, library versions and hardware."""
        row = self.table_row(columns)
        row["hardware"] = self.hardware
        row.update({f"version_{k}": v for k, v in self.versions.items()})
        return row


# Columns that are not metrics (everything else in a table row is one).
NON_METRIC = set(IDENTITY + SETTINGS + PROVENANCE) | {"reason", "run_id", "end_time"}
CSV_TRAILING = ("train_seconds", *SETTINGS, *PROVENANCE, "hardware", "reason")


def csv_columns(rows: list[dict], metric_columns: tuple = ()) -> list[str]:
    """results.csv's header: identity, every metric any row has (the suite's in their order,
    then the rest sorted), settings and provenance, then parameters and versions."""
    fixed = NON_METRIC | set(CSV_TRAILING)
    seen = {k for r in rows for k in r if k not in fixed}
    extra = sorted(k for k in seen if k.startswith(("param_", "version_")))
    metrics = [k for k in metric_columns if k in seen]
    metrics += sorted(seen - set(metrics) - set(extra))
    return list(IDENTITY) + (metrics or list(metric_columns)) + list(CSV_TRAILING) + extra


# -------------------------------------------------------------------------------- provenance
@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit this process's code came from: asked once, when a process first records
    (close to when it imported the code), not at each trial's end, which in a long sweep may
    name commits made after the code was loaded."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=Path(__file__).parent, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def library_versions() -> dict:
    """Versions of the libraries a result depends on, read from the installed metadata (a
    worker need not import MLflow or Ray to know them)."""
    from importlib.metadata import PackageNotFoundError, version

    import torch
    versions = {"torch": torch.__version__}  # with its build tag (+cu130), unlike the metadata
    for key, dist in (("sklearn", "scikit-learn"), ("mlflow", "mlflow")):
        versions[key] = version(dist)
    versions["python"] = platform.python_version()
    try:
        versions["ray"] = version("ray")
    except PackageNotFoundError:
        pass
    return versions


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name where Linux says it ("" elsewhere): machines of one kind may be
    different CPUs, whose float results and speeds differ."""
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def hardware() -> str:
    import torch
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    model = cpu_model()
    return (f"{platform.processor() or platform.machine()} CPU{f' ({model})' if model else ''}, "
            f"{os.cpu_count()} cores")
