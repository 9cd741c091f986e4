"""A sweep against a real `mlflow server` on 127.0.0.1 that goes away for a while mid-sweep:
afterwards every finished trial is in the store exactly once, and --resume works there too."""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from mlflow.tracking import MlflowClient

from harness import tracking
from tests.test_sweep import PROFILE, REPO, SUITE, csv_rows, expected_names

pytestmark = pytest.mark.sweep


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db, port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{db}",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=db.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.5)
    stop_server(server)
    raise AssertionError("mlflow server did not start")


def stop_server(server: subprocess.Popen) -> None:
    """Killed, not shut down: a crash is the harder outage (and a graceful stop takes ~7 s)."""
    os.killpg(server.pid, signal.SIGKILL)
    server.wait(timeout=60)


def test_a_server_that_goes_away_mid_sweep_loses_no_trial_and_holds_each_once(tmp_path):
    db, port = tmp_path / "server.db", free_port()
    uri = f"http://127.0.0.1:{port}"
    server = start_server(db, port)
    out = tmp_path / "runs"
    methods, dims = ["muc2m", "dcca"], [8]
    args = [sys.executable, "-m", "harness.run", "--suite", SUITE, "--profile", PROFILE,
            "--methods", ",".join(methods), "--dims", "8", "--out", str(out),
            "--mlflow-uri", uri, "--max-concurrent", "1", "--epochs", "20"]
    try:
        driver = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        results = out / f"{SUITE}-{PROFILE}" / "results.csv"
        deadline = time.time() + 300
        while not (results.exists() and len(csv_rows(out)) >= 1) and time.time() < deadline:
            assert driver.poll() is None, driver.communicate()[1][-3000:]  # it died: say why
            time.sleep(0.2)
        stop_server(server)  # the tracking server goes away for a while...
        time.sleep(3)  # with the restart's ~10 s: trials end while it is away (asserted below)
        server = start_server(db, port)  # ...and comes back on the same store
        stdout, stderr = driver.communicate(timeout=600)
        assert driver.returncode == 0, stderr[-3000:]
        client = MlflowClient(uri)
        parent = tracking.find_sweep(client, SUITE, PROFILE)
        children = tracking.child_runs(client, parent)
        names = sorted(r.info.run_name for r in children)
        assert names == sorted(expected_names(methods, dims))  # every trial, exactly once
        assert all(r.info.status == "FINISHED" for r in children)
        assert sorted(r["name"] for r in csv_rows(out)) == names
        assert "unreachable" in stdout and "is back" in stdout  # the outage was met, and ridden out
        ledger = (out / f"{SUITE}-{PROFILE}" / "records.jsonl").read_text().splitlines()
        assert len(ledger) == len(names)  # the ledger got each trial once, outage or not

        again = subprocess.run([*args, "--resume"], cwd=REPO, capture_output=True, text=True,
                               timeout=600)
        assert again.returncode == 0, again.stderr[-3000:]
        assert f"{len(names)} trials already finished, 0 to run" in again.stdout
        assert sorted(r.info.run_name for r in tracking.child_runs(client, parent)) == names
    finally:
        stop_server(server)
