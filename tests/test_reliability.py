"""Faults: a killed worker, a diverging trial, two sweeps on one store, bad data input."""
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_sweep import PROFILE, REPO, SUITE, csv_rows, harness_run, store

pytestmark = pytest.mark.sweep  # every test here starts Ray


def wait_for(predicate, timeout_s=300, what="condition"):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def reported_epochs(storage: Path) -> list[int]:
    """Epochs whose checkpoint Ray Tune registered (result.json rows that name one)."""
    epochs = []
    for path in storage.glob("*/muc2m_d=8_lam=0.005_seed=0_-*/result.json"):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if row.get("checkpoint_dir_name"):
                epochs.append(int(row["epoch"]))
    return sorted(epochs)


def test_a_trial_killed_on_a_two_node_cluster_resumes_from_ray_storage_and_ends_identically(
        tmp_path):
    """The killed trial's local checkpoint folder is deleted, as if its node were gone: the
    retry can only continue from the checkpoint Ray Tune copied to the sweep's storage."""
    from ray.cluster_utils import Cluster
    common = ["--methods", "muc2m", "--dims", "8", "--strengths", "0.005", "--epochs", "60"]
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        # Without --address a sweep starts its own local Ray, even with a cluster on this machine.
        clean = harness_run(*common, "--out", str(tmp_path / "clean"))
        assert clean.returncode == 0, clean.stderr[-3000:]
        out = tmp_path / "killed"
        storage = tmp_path / "shared-storage"  # what every node reaches (a bucket, an NFS)
        driver = subprocess.Popen(
            [sys.executable, "-m", "harness.run", "--suite", SUITE, "--profile", PROFILE, *common,
             "--out", str(out), "--storage", str(storage), "--address", cluster.address],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        trial_dir = out / f"{SUITE}-{PROFILE}" / "checkpoints" / "muc2m[d=8,lam=0.005,seed=0]"
        wait_for(lambda: len(reported_epochs(storage)) >= 2 and (trial_dir / "worker.pid").exists(),
                 what="two reported checkpoints")
        os.kill(int((trial_dir / "worker.pid").read_text()), signal.SIGKILL)
        shutil.rmtree(trial_dir)  # the node's disk is gone with it
        last_reported = reported_epochs(storage)[-1]
        stdout, stderr = driver.communicate(timeout=600)
    finally:
        cluster.shutdown()
    assert driver.returncode == 0, stderr[-3000:]
    assert "cluster: 2 CPUs" in stdout and "retrying from its checkpoint" in stderr
    (row_clean,), (row_killed,) = csv_rows(tmp_path / "clean"), csv_rows(out)
    assert int(float(row_killed["resumed_from"])) == last_reported > 0
    for key in ("corr_heldout", "corr_refit", "recog_acc", "val_corr_best", "best_epoch"):
        assert row_killed[key] == row_clean[key], key


def test_diverging_trial_is_recorded_as_diverged_and_the_sweep_goes_on(tmp_path):
    out = tmp_path / "runs"
    # ridge 0 with d = 255 on batches of 256: the batch covariance is singular.
    proc = harness_run("--methods", "dcca,muc2m", "--dims", "255", "--strengths", "0",
                       "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["method"]: r for r in csv_rows(out)}
    assert rows["dcca"]["status"] == "diverged" and "cholesky" in rows["dcca"]["reason"]
    assert rows["muc2m"]["status"] == "ok"
    _, _, children = store(out)
    dcca = [r for r in children if r.data.params["method"] == "dcca"][0]
    assert dcca.data.tags["status"] == "diverged" and dcca.data.tags["failure_reason"]
    table1 = (out / f"{SUITE}-{PROFILE}" / "table1.md").read_text()
    assert "| Deep CCA | diverged |" in table1


def test_two_sweeps_write_to_one_store_at_once(tmp_path):
    uri = f"sqlite:///{tmp_path / 'shared.db'}"
    procs = [subprocess.Popen([sys.executable, "-m", "harness.run", "--suite", SUITE, "--profile",
                               PROFILE, "--methods", method, "--dims", "8,16", "--out",
                               str(tmp_path / method), "--mlflow-uri", uri], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for method in ("cca", "muc2m")]
    for proc in procs:
        _, stderr = proc.communicate(timeout=900)
        assert proc.returncode == 0, stderr[-3000:]
    from mlflow.tracking import MlflowClient
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(SUITE)
    runs = [r for r in client.search_runs([exp.experiment_id], max_results=1000)
            if r.data.tags.get("kind") != "sweep"]
    names = sorted(r.info.run_name for r in runs)
    assert len(names) == len(set(names)) == 8  # 2 methods × 2 d × 2 strengths, none lost
    assert all(r.info.status == "FINISHED" for r in runs)
    # each driver's tables are its own sweep's, not the store's latest sweep's
    for method, title, other in (("cca", "| CCA |", "| MUC2M |"), ("muc2m", "| MUC2M |", "| CCA |")):
        table1 = (tmp_path / method / f"{SUITE}-{PROFILE}" / "table1.md").read_text()
        assert title in table1 and other not in table1, method


def test_corrupt_offline_mnist_stops_the_sweep_before_ray_starts(tmp_path):
    fake = tmp_path / "site" / "mnist"
    (fake / "data").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    with gzip.open(fake / "data" / "mnist.pkl.gz", "wb") as fh:
        fh.write(b"corrupt")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'site'}{os.pathsep}{REPO}",
           "MUC2M_OFFLINE": "1", "MUC2M_CACHE": str(tmp_path / "cache")}
    proc = harness_run("--dims", "8", "--out", str(tmp_path / "runs"), env=env)
    assert proc.returncode == 2
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "sha256" in errors[0] and "reinstall" in errors[0]
    assert "cluster:" not in proc.stdout  # stopped by the suite's input check, before Ray
    assert not (tmp_path / "runs" / "mlflow.db").exists()  # ...and before the store
    assert not (tmp_path / "runs" / f"{SUITE}-{PROFILE}" / "results.csv").exists()
