"""Faults: a killed worker, a diverging trial, two sweeps on one store, bad data input."""
import gzip
import os
import signal
import subprocess
import sys
import time

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


def test_killed_worker_is_retried_from_its_checkpoint_and_ends_identically(tmp_path):
    common = ["--methods", "muc2m", "--dims", "8", "--strengths", "0.005", "--epochs", "150"]
    clean = harness_run(*common, "--out", str(tmp_path / "clean"))
    assert clean.returncode == 0, clean.stderr[-3000:]

    out = tmp_path / "killed"
    driver = subprocess.Popen([sys.executable, "-m", "harness.run", "--suite", SUITE, "--profile",
                               PROFILE, *common, "--out", str(out)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    trial_dir = out / f"{SUITE}-{PROFILE}" / "checkpoints" / "muc2m[d=8,lam=0.005,seed=0]"
    wait_for(lambda: (trial_dir / "trial_state.pt").exists() and (trial_dir / "worker.pid").exists(),
             what="the first checkpoint")
    os.kill(int((trial_dir / "worker.pid").read_text()), signal.SIGKILL)
    stdout, stderr = driver.communicate(timeout=600)
    assert driver.returncode == 0, stderr[-3000:]
    assert "retrying from its checkpoint" in stderr
    (row_clean,), (row_killed,) = csv_rows(tmp_path / "clean"), csv_rows(out)
    assert float(row_killed["resumed_from"]) > 0  # the retry did not start over
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


def test_corrupt_offline_mnist_stops_the_sweep_before_any_trial(tmp_path):
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
    assert not (tmp_path / "runs" / f"{SUITE}-{PROFILE}" / "results.csv").exists()
