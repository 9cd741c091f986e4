"""What a trial hands MLflow besides its metrics, in MLflow's own conventions.

The worker side (no MLflow store is open there: children are written by the driver after a
trial ends) collects, while the trial runs:

- `SystemSampler`: MLflow's own system-metrics monitors (CPU, memory, disk, network, and the
  GPUs where NVML finds one), sampled on a thread during the trial; the samples come back in the
  record (`TrialRecord.system_metrics`) and are logged as `system/...` metrics with steps, as
  `mlflow.start_run(log_system_metrics=True)` would have logged them;
- `dataset_info`: name, digest and source of the suite's data (the Dataset column);
- `save_encoders`: a reported trial's two view encoders, each a `ViewEncoder` module saved in
  the trial's checkpoint folder (a path in the record, never the weights themselves), with the
  representations of the first test items they produced, to check a reload against.

The driver side (`tracking.log_trial`) turns these into a dataset input, `system/` metrics and
two logged models (`encoder_view1`, `encoder_view2`): `mlflow.pytorch.load_model(uri)` gives
back a module mapping a view's batch to its representation.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import logging
import threading
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

SYSTEM_PREFIX = "system/"
ENCODER_FILE = "encoders.pt"  # in the trial's checkpoint folder
CHECK_ITEMS = 64  # test items whose representations are kept beside the encoders
MAX_SAMPLES = 60  # a long trial keeps every other sample when it has this many


# ------------------------------------------------------------------------------ system metrics
def _monitors() -> list:
    """MLflow's monitors: CPU/memory, disk, network, and NVIDIA (else ROCm) GPUs if any."""
    from mlflow.system_metrics.metrics.cpu_monitor import CPUMonitor
    from mlflow.system_metrics.metrics.disk_monitor import DiskMonitor
    from mlflow.system_metrics.metrics.network_monitor import NetworkMonitor
    monitors = [CPUMonitor(), DiskMonitor(), NetworkMonitor()]
    quiet = logging.getLogger("mlflow.system_metrics")
    for module, name in (("gpu_monitor", "GPUMonitor"), ("rocm_monitor", "ROCMMonitor")):
        try:
            cls = getattr(importlib.import_module(f"mlflow.system_metrics.metrics.{module}"), name)
            monitors.append(cls())
            break
        except Exception:  # noqa: BLE001 - no such GPU (or no NVML): CPU metrics only
            quiet.debug("no %s", name)
    return monitors


class SystemSampler:
    """Samples MLflow's system metrics every `interval` seconds on a daemon thread, from
    `start` to `stop`; `stop` returns [{"step", "t", "metrics"}] with `system/` keys (at least
    one sample, taken at stop, however short the trial)."""

    def __init__(self, interval: float = 2.0):
        self.interval = interval
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = None
        self._monitors = []
        self._t0 = time.time()

    def start(self) -> "SystemSampler":
        try:
            self._monitors = _monitors()
        except Exception:  # noqa: BLE001 - psutil missing: the trial runs without samples
            return self
        self._t0 = time.time()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="SystemSampler")
        self._thread.start()
        return self

    def _sample(self) -> None:
        metrics = {}
        for monitor in self._monitors:
            try:
                monitor.collect_metrics()
                metrics.update(monitor.aggregate_metrics())
            except Exception:  # noqa: BLE001 - one failing device does not end the sampling
                pass
            monitor.clear_metrics()
        metrics = {SYSTEM_PREFIX + k: round(float(v), 4) for k, v in metrics.items()
                   if isinstance(v, (int, float)) and np.isfinite(v)}
        if metrics:
            self.samples.append({"t": round(time.time() - self._t0, 3), "metrics": metrics})
        if len(self.samples) >= MAX_SAMPLES:  # keep the record small: halve the resolution
            self.samples = self.samples[::2]
            self.interval *= 2

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def stop(self) -> list[dict]:
        if self._thread is None:
            return []
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()  # the trial's last moment: a trial shorter than the interval has one
        self._thread = None
        return [{"step": i, **s} for i, s in enumerate(self.samples)]


def sampled(run_trial):
    """Decorate a suite's `run_trial`: the returned record carries the system samples taken
    while it ran (a trial that raises loses them with its record)."""
    @functools.wraps(run_trial)
    def wrapper(*args, **kwargs):
        sampler = SystemSampler().start()
        try:
            record = run_trial(*args, **kwargs)
        finally:
            samples = sampler.stop()
        if record is not None and hasattr(record, "system_metrics"):
            record.system_metrics = samples
        return record
    return wrapper


def system_metric_points(samples: list[dict]) -> list[tuple[str, float, int, int]]:
    """(key, value, step, timestamp offset ms) of every sample."""
    return [(k, float(v), int(s["step"]), int(1000 * s.get("t", 0)))
            for s in samples for k, v in s["metrics"].items()]


# ------------------------------------------------------------------------------------ datasets
_DIGESTS: dict = {}


def data_digest(data: dict) -> str:
    """16 hex digits over every split's arrays (both views and labels), in split order; kept
    per process for the same arrays (a worker runs many trials on one data set)."""
    key = tuple((split, *(id(a) for a in _arrays(views))) for split, views in data.items())
    if key not in _DIGESTS:
        h = hashlib.blake2b(digest_size=8)
        for split, views in data.items():
            h.update(split.encode())
            for a in _arrays(views):
                a = np.ascontiguousarray(a)
                h.update(str((a.dtype, a.shape)).encode())
                h.update(a.data)
        _DIGESTS.clear()
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def _arrays(views) -> list:
    return [a for a in (getattr(views, "x1", None), getattr(views, "x2", None),
                        getattr(views, "y", None)) if isinstance(a, np.ndarray)]


def dataset_info(data: dict, suite: str, profile: str, source: str | None = None) -> dict:
    """Name, digest, source and split sizes of a trial's data (JSON, for the record)."""
    return {"name": f"{suite}-{profile}", "digest": data_digest(data),
            "source": source or f"harness.suites:{suite}",
            "splits": {split: len(views) for split, views in data.items()}}


def mlflow_dataset(info: dict):
    """The MLflow dataset of `dataset_info`: a local-file source where the data came from a
    path (`--mnist-dir`, `--data`), else the harness loader as a code source."""
    from mlflow.data.meta_dataset import MetaDataset
    source = info["source"]
    if source.startswith("harness."):
        from mlflow.data.code_dataset_source import CodeDatasetSource
        src = CodeDatasetSource({"mlflow.source.name": source})
    else:
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        src = resolve_dataset_source(str(Path(source).resolve()))
    return MetaDataset(src, name=info["name"], digest=info["digest"])


# ------------------------------------------------------------------------------------ encoders
class ViewEncoder(nn.Module):
    """One view's encoder as the metrics see it: code(BN(f(x))), x an n × p float batch."""

    def __init__(self, net: nn.Module, bn: nn.Module, sigmoid: bool):
        super().__init__()
        self.net, self.bn, self.sigmoid = net, bn, sigmoid

    def forward(self, x):
        z = self.bn(self.net(torch.as_tensor(x, dtype=torch.float32)))
        return torch.sigmoid(z) if self.sigmoid else z


def view_encoders(model) -> tuple:
    """The two `ViewEncoder`s of a `harness.models.TwoViewModel`, on the CPU, in eval mode,
    sharing nothing with the trained model."""
    import copy
    sigmoid = getattr(model, "code_activation", None) == "sigmoid"
    pairs = ((model.enc1, model.bn1), (model.enc2, model.bn2))
    return tuple(ViewEncoder(copy.deepcopy(net).cpu(), copy.deepcopy(bn).cpu(), sigmoid).eval()
                 for net, bn in pairs)


def save_encoders(model, folder, test_views, test_reps) -> str:
    """Save the two view encoders of a trained model with the first `CHECK_ITEMS` test items
    and the representations the trial computed for them (`test_reps`: its (z1, z2) of the
    whole test split), to check a reloaded encoder against; returns the file's path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    enc1, enc2 = view_encoders(model)
    n = CHECK_ITEMS
    x1 = torch.as_tensor(np.asarray(test_views.x1[:n]), dtype=torch.float32)
    x2 = torch.as_tensor(np.asarray(test_views.x2[:n]), dtype=torch.float32)
    z1, z2 = (torch.as_tensor(z[:n]).detach().double().cpu().clone() for z in test_reps)
    path = folder / ENCODER_FILE
    torch.save({"view1": enc1, "view2": enc2, "x1": x1, "x2": x2, "z1": z1, "z2": z2}, path)
    return str(path.resolve())


def load_saved(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def log_encoders(client, run_id: str, path: str) -> list[str]:
    """Log the saved encoders of `path` as MLflow models of run `run_id` (one per view);
    returns their model URIs (models:/<model id>)."""
    import mlflow
    import mlflow.pytorch
    from mlflow.models import infer_signature

    saved = load_saved(path)
    uris = []
    requirements = [f"torch=={torch.__version__.split('+')[0]}"]
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(client._tracking_client.tracking_uri)
    # pickle, as the encoders are torch modules of this package (pt2 would torch.export each);
    # MLflow warns of pickle on every model, two lines per trial in a sweep's log: dropped
    quiet = _DropMessage("Saving pytorch model by Pickle")
    logging.getLogger("mlflow.pytorch").addFilter(quiet)
    try:
        with mlflow.start_run(run_id=run_id):
            for view in ("view1", "view2"):
                x, z = saved["x" + view[-1]].numpy(), saved["z" + view[-1]].float().numpy()
                info = mlflow.pytorch.log_model(
                    saved[view], name=f"encoder_{view}", signature=infer_signature(x, z),
                    pip_requirements=requirements, serialization_format="pickle")
                uris.append(info.model_uri)
    finally:
        logging.getLogger("mlflow.pytorch").removeFilter(quiet)
        mlflow.set_tracking_uri(previous)
    return uris


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)
