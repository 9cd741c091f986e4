"""Real (tiny, smoke-profile) sweeps through Ray Tune and MLflow."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from harness import tracking
from harness.registry import get
from tables import build as tables_build

REPO = Path(__file__).resolve().parents[1]
SUITE, PROFILE = "mnist_halves", "smoke"


def harness_run(*args, timeout=900, **popen):
    return subprocess.run([sys.executable, "-m", "harness.run", "--suite", SUITE, "--profile",
                           PROFILE, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, **popen)


def expected_names(methods, dims):
    names = set()
    for method in methods:
        spec = get(method)
        for d in dims:
            for strength in spec.grid_for("two_view"):
                names.add(f"{method}[d={d},{spec.strength}={strength:g},seed=0]")
    return names


def store(out: Path):
    client = MlflowClient(tracking.default_uri(out))
    parent = tracking.find_sweep(client, SUITE, PROFILE)
    assert parent is not None
    return client, parent, tracking.child_runs(client, parent)


def csv_rows(out: Path):
    with open(out / f"{SUITE}-{PROFILE}" / "results.csv") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.sweep
def test_smoke_sweep_logs_every_trial_once_and_tables_rebuild_identically(tmp_path, capsys):
    out = tmp_path / "runs"
    proc = harness_run("--methods", "cca,muc2m", "--dims", "8,16", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, parent, children = store(out)
    names = [run.info.run_name for run in children]
    assert sorted(names) == sorted(expected_names(["cca", "muc2m"], [8, 16]))
    for run in children:
        assert run.info.status == "FINISHED" and run.data.tags["status"] == "ok"
        for key in ("corr_heldout", "corr_refit", "corr_floor", "corr_diag", "recog_acc",
                    "recog_acc_swapped", "val_corr_best", "train_seconds"):
            assert key in run.data.metrics, (run.info.run_name, key)
        assert run.data.params["profile"] == PROFILE
        assert 0 < run.data.metrics["corr_heldout"] <= int(run.data.params["d"])
        if run.data.params["method"] == "muc2m":  # a validation curve, one point per pass
            assert len(client.get_metric_history(run.info.run_id, "val_corr")) == 2
    assert len(csv_rows(out)) == len(names)
    # a worker ran trial after trial (reuse_actors): fewer worker processes than trials
    pids = {p.read_text() for p in (out / f"{SUITE}-{PROFILE}" / "checkpoints").glob("*/worker.pid")}
    assert len(pids) < len(names) == 8, pids
    # `mlflow ui` opens the experiment on its training runs, not in the GenAI overview
    assert client.get_experiment_by_name(SUITE).tags["mlflow.experimentKind"] == \
        "custom_model_development"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"table1.md", "table5.md", "corr_vs_d.png", "results.csv"} <= artifacts

    sweep_dir = out / f"{SUITE}-{PROFILE}"
    # the ledger holds every trial whole: its validation curve and provenance
    ledger = [json.loads(line) for line in (sweep_dir / "records.jsonl").read_text().splitlines()]
    assert sorted(r["name"] for r in ledger) == sorted(names)
    assert all(len(r["history"]) == 2 for r in ledger if r["method"] == "muc2m")
    plan = json.loads((sweep_dir / "plan.json").read_text())
    assert sorted(t["name"] for t in plan["trials"]) == sorted(names)
    # what the whole-protocol ETA said at each ended trial, for `harness.bench.eta`
    events = [json.loads(line)["event"]
              for line in (sweep_dir / "progress.jsonl").read_text().splitlines()]
    assert events == ["start"] + ["ended"] * len(names) + ["finished"]
    assert plan["methods"]["muc2m"]["title"] == "MUC2M" and plan["suite"] == SUITE
    # the tables are a function of the folder alone: rebuilt without the store, byte-identical
    rebuilt = tmp_path / "rebuilt"
    (out / "mlflow.db").rename(out / "gone.db")
    tables_build.build([sweep_dir], out_dir=rebuilt)
    for fname in ("table1.md", "table5.md", "tables.csv", "corr_vs_d.png", "val_curves.png"):
        assert (rebuilt / fname).read_bytes() == (sweep_dir / fname).read_bytes(), fname
    assert tables_build.main([str(sweep_dir), "--out-dir", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "table1.md").read_text() == (sweep_dir / "table1.md").read_text()
    capsys.readouterr()
    assert tables_build.main([str(tmp_path / "not-a-sweep")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0  # one line
    table1 = (rebuilt / "table1.md").read_text()
    assert "| CCA |" in table1 and "| MUC2M |" in table1 and "Provenance: profile `smoke`" in table1


@pytest.mark.sweep
def test_killed_driver_resumes_without_rerunning_or_duplicating(tmp_path):
    out = tmp_path / "runs"
    args = [sys.executable, "-m", "harness.run", "--suite", SUITE, "--profile", PROFILE,
            "--methods", "muc2m,dcca", "--dims", "8,16", "--out", str(out), "--max-concurrent", "1",
            "--epochs", "12"]  # trials long enough (seconds each) to be killed in mid-sweep
    driver = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    results = out / f"{SUITE}-{PROFILE}" / "results.csv"
    deadline = time.time() + 300
    while time.time() < deadline and driver.poll() is None:
        if results.exists() and len(csv_rows(out)) >= 2:
            break
        time.sleep(0.5)
    assert driver.poll() is None, "the sweep ended before it could be interrupted"
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started
    driver.wait()
    client, parent, before = store(out)
    finished = {r.info.run_name: r.info.run_id for r in before if r.info.status == "FINISHED"}
    # the ledger is written before the store: a trial the driver had not mirrored yet is in
    # the ledger, and --resume mirrors it instead of running it again
    ledger = out / f"{SUITE}-{PROFILE}" / "records.jsonl"
    kept = {json.loads(line)["name"] for line in ledger.read_text().splitlines()}
    assert set(finished) <= kept and 2 <= len(kept) < 8

    proc = harness_run("--methods", "muc2m,dcca", "--dims", "8,16", "--out", str(out), "--epochs", "12",
                       "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{len(kept)} trials already finished" in proc.stdout
    client, parent2, after = store(out)
    assert parent2.info.run_id == parent.info.run_id
    assert f"resuming sweep {parent.info.run_id}" in proc.stdout
    names = [r.info.run_name for r in after]
    assert sorted(names) == sorted(expected_names(["muc2m", "dcca"], [8, 16]))  # no duplicates
    for name, run_id in finished.items():  # finished trials were kept, not recomputed
        assert {r.info.run_id for r in after if r.info.run_name == name} == {run_id}
    assert sorted(r["name"] for r in csv_rows(out)) == sorted(names)
    again = [json.loads(line)["name"] for line in ledger.read_text().splitlines()]
    assert sorted(again) == sorted(names)  # the ledger, too, holds each trial once


def test_a_rerun_sweep_finds_each_trials_latest_checkpoint_in_the_storage_by_name(tmp_path):
    """--resume starts a new Tuner, whose trials look for what an earlier run reported
    (`<storage>/<experiment>/<trial>-<id>/checkpoint_*`), highest epoch first."""
    import json

    from harness.tune import _stored_checkpoint, trial_dirname
    name = "muc2m[d=8,lam=0.005,seed=0]"
    layout = {f"{trial_dirname(name)}-aaa/checkpoint_000000": 2,
              f"{trial_dirname(name)}-aaa/checkpoint_000001": 4,
              f"{trial_dirname(name)}-bbb/checkpoint_000000": 6,   # a retry of the earlier run
              f"{trial_dirname(name)}-bbb/checkpoint_000001": None,  # cut short: no progress
              f"{trial_dirname('muc2m[d=8,lam=0.005,seed=1]')}-ccc/checkpoint_000000": 9}
    for folder, epoch in layout.items():
        path = tmp_path / "exp" / folder
        path.mkdir(parents=True)
        if epoch is not None:
            (path / "progress.json").write_text(json.dumps({"epoch": epoch}))
    found = _stored_checkpoint(str(tmp_path), "exp", name)
    assert found.path.endswith(f"{trial_dirname(name)}-bbb/checkpoint_000000")
    assert _stored_checkpoint(str(tmp_path), "exp", "dcca[d=8,ridge=0.001,seed=0]") is None
    assert _stored_checkpoint(str(tmp_path), "missing-experiment", name) is None


def test_fresh_worker_per_trial_turns_tunes_worker_reuse_off(monkeypatch):
    """The flag reaches Ray Tune (reuse itself is checked end to end by the smoke sweep)."""
    from types import SimpleNamespace

    from harness import tune as tune_runner
    from harness.run import parse_args
    from harness.suites import get_suite
    seen = []
    fake = SimpleNamespace(
        with_parameters=lambda fn, **kw: fn, with_resources=lambda fn, res: fn,
        grid_search=lambda values: values, RunConfig=lambda **kw: kw,
        CheckpointConfig=lambda **kw: kw, FailureConfig=lambda **kw: kw,
        TuneConfig=lambda **kw: seen.append(kw["reuse_actors"]) or kw,
        Tuner=lambda *a, **kw: SimpleNamespace(fit=lambda: None))
    monkeypatch.setattr(tune_runner, "tune", fake)
    for argv in ([], ["--fresh-worker-per-trial"]):
        fresh = parse_args(["--suite", SUITE, *argv]).fresh_worker_per_trial
        tune_runner.run_grid([{"name": "t"}], None, suite=get_suite(SUITE), storage="/tmp",
                             on_result=None, fresh_workers=fresh)
    assert seen == [True, False]


def test_python_m_tables_build_resolves_to_this_project(tmp_path):
    # one interpreter (each import of tables.build costs seconds): where `tables` resolves,
    # and `python -m tables.build` run from another folder
    code = ("import runpy, sys, tables; print(tables.IS_MUC2M_HARNESS_TABLES, tables.__file__); "
            "sys.argv = ['tables.build', '--help']; runpy.run_module('tables.build', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("True") and str(REPO / "tables") in proc.stdout
    assert "FOLDER" in proc.stdout


def test_tables_build_on_a_folder_without_a_plan_says_so_and_writes_nothing(tmp_path, capsys):
    missing = tmp_path / "typo"
    assert tables_build.main([str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no plan.json here" in err, err
    assert not missing.exists()


@pytest.mark.parametrize("args, message", [
    (["--suite", "nope"], "unknown suite"),
    (["--suite", SUITE, "--methods", "dcca,nope"], "unknown method"),
    (["--suite", SUITE, "--methods", ","], "names no method"),
    (["--suite", SUITE, "--methods", "zz*"], "matches no method of suite mnist_halves"),
    (["--suite", SUITE, "--plugin", "/no/such/plugin.py"], "--plugin /no/such/plugin.py: cannot load it"),
    (["--suite", SUITE, "--plugin", "json"], "it registered no method"),
    (["--suite", SUITE, "--methods", ""], "names no method"),
    (["--suite", SUITE, "--profile", "huge"], "unknown profile"),
    (["--suite", SUITE, "--dims", "50,abc"], "expected comma-separated numbers"),
    (["--suite", SUITE, "--dims", "0"], "not a positive integer"),
    (["--suite", SUITE, "--dims", "12.5"], "not a positive integer"),
    (["--suite", SUITE, "--dims", ""], "--dims is empty"),
    (["--suite", SUITE, "--profile", "smoke", "--dims", "300"], "not larger than d"),
    (["--suite", SUITE, "--methods", "sdcca", "--strengths", "2"], "outside its valid range"),
    (["--suite", SUITE, "--strengths", "0.1,inf"], "not a finite number"),
    (["--suite", SUITE, "--strengths", "x"], "expected comma-separated numbers"),
    (["--suite", SUITE, "--seeds", "0"], "argument --seeds: 0 is below 1"),
    (["--suite", SUITE, "--seeds", "two"], "argument --seeds: 'two' is not a whole number"),
    (["--suite", SUITE, "--epochs", "0"], "argument --epochs: 0 is below 1"),
    (["--suite", SUITE, "--epochs", "1.5"], "argument --epochs: '1.5' is not a whole number"),
    (["--suite", SUITE, "--cpus-per-trial", "0"], "argument --cpus-per-trial: 0 is below 1"),
    (["--suite", SUITE, "--cpus-per-trial", "4096"], "no trial could ever start"),
    (["--suite", SUITE, "--max-concurrent", "0"], "argument --max-concurrent: 0 is below 1"),
    (["--suite", SUITE, "--max-concurrent", "-3"], "argument --max-concurrent: -3 is below 1"),
    (["--suite", SUITE, "--gpus-per-trial", "-1"], "argument --gpus-per-trial: -1 must be"),
    (["--suite", SUITE, "--gpus-per-trial", "nan"], "argument --gpus-per-trial: nan must be"),
    (["--suite", SUITE, "--gpus-per-trial", "lots"], "'lots' is not a number"),
    (["--suite", SUITE, "--mnist-dir", "/no/such/folder"], "no such folder"),
    (["--suite", "coco_ooi", "--weights", "resnet50"], "expected NAME=PATH"),
    (["--suite", SUITE, "--data", "x.npz"], "--data is not an option of suite mnist_halves"),
    (["--suite", SUITE, "--bogus", "1"], "unrecognized arguments: --bogus"),
    (["--suite", "scenes_pairs", "--precision", "bf16"], "fp32 only"),
    (["--suite", SUITE, "--precision", "fp16"], "invalid choice: 'fp16'"),
    (["--suite", SUITE, "--out", "/proc/forbidden"], "cannot write there"),
    (["--suite", SUITE, "--mlflow-uri", "sqlite:////proc/nope/x.db"], "cannot open the MLflow store"),
    (["--suite", SUITE, "--profile", "smoke", "--dims", "8", "--address", "127.0.0.1:1"],
     "cannot reach Ray"),
])
def test_bad_input_is_one_line_and_exit_2_before_any_trial(tmp_path, args, message, capsys):
    from harness import run
    if "--out" not in args:
        args = [*args, "--out", str(tmp_path / "runs")]
    code = run.main(args)  # in-process: what `python -m harness.run` runs, without the start-up
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    error_lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(error_lines) == 1 and message in error_lines[0], err[-2000:]
    assert "ended:" not in err  # no trial started


def test_bad_input_through_the_cli_exits_2_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "harness.run", "--suite", SUITE, "--seeds", "0",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert proc.stderr.startswith("error: argument --seeds")


def test_trials_start_with_the_largest_d_so_a_sweep_does_not_end_on_its_slowest_trials(tmp_path):
    from harness.planner import grid_trials
    from harness.suites import get_suite
    trials = grid_trials(get_suite("mnist_halves"), "quick", ["cca", "muc2m"], [50, 1000, 200],
                         None, 1, tmp_path, {})
    assert [t["d"] for t in trials] == [1000] * 4 + [200] * 4 + [50] * 4
    assert {t["method"] for t in trials[:4]} == {"cca", "muc2m"}


def test_progress_view_counts_trials_and_ranks_the_suites_leader_metric_per_d():
    import io
    import json
    from types import SimpleNamespace

    from harness.tune import SweepCallback

    def trial(name, method, d, metrics):
        final = json.dumps({"name": name, "method": method, "d": d, "status": "ok",
                            "metrics": metrics, "train_seconds": 3.0})
        return SimpleNamespace(config={"trial": {"name": name}}, status="TERMINATED",
                               last_result={"final": final})

    stream, seen = io.StringIO(), []
    view = SweepCallback(3, seen.append, stream=stream, leader_metric="corr_heldout",
                         headline=lambda m: f"corr {m['corr_heldout']:.1f}")
    for t in (trial("a", "dcca", 50, {"corr_heldout": 40.0}),
              trial("b", "muc2m", 50, {"corr_heldout": 45.6}),
              trial("c", "cca", 100, {"corr_heldout": 30.0})):
        view.on_trial_complete(0, [], t)
    lines = stream.getvalue().splitlines()
    assert [r.name for r in seen] == ["a", "b", "c"]
    assert lines[-1].startswith("[3/3 ended: 3 ok, 0 diverged, 0 failed | 0 running] c corr 30.0")
    assert ", ETA " in lines[0] and "ETA" not in lines[-1]  # estimated from the finished trials
    assert lines[-1].endswith("| best d=50: muc2m 45.6, d=100: cca 30.0")

    # the whole protocol's ETA is told the epoch each running trial last reported
    asked = []
    view = SweepCallback(2, seen.append, stream=io.StringIO(),
                         protocol_eta=lambda in_flight: asked.append(in_flight) or "1 h")
    running = SimpleNamespace(config={"trial": {"name": "r"}}, status="RUNNING")
    view.on_trial_start(0, [running], running)
    view.on_trial_result(0, [running], running, {"epoch": 10, "val_corr": 30.0})
    view.on_trial_complete(0, [running], trial("a", "dcca", 50, {"corr_heldout": 40.0}))
    assert asked[-1] == {"r": 10}

    stream = io.StringIO()  # a suite without a leader metric prints no ranking
    view = SweepCallback(1, seen.append, stream=stream, headline=lambda m: "AP 7.5")
    view.on_trial_complete(0, [], trial("u", "uniform", 64, {"ap": 7.5}))
    assert "best" not in stream.getvalue() and "u AP 7.5 (3 s)" in stream.getvalue()


def test_resume_keeps_finished_trials_once_and_reruns_failed_ones(tmp_path):
    from harness.record import TrialRecord
    client = tracking.open_client(tracking.default_uri(tmp_path))
    parent = tracking.start_sweep(client, SUITE, PROFILE, {})
    ok = TrialRecord(name="cca[d=8,ridge=0.001,seed=0]", method="cca", d=8, profile=PROFILE,
                     metrics={"corr_heldout": 5.0})
    failed = TrialRecord(name="sdcca[d=8,rho=0.9,seed=0]", method="sdcca", d=8, profile=PROFILE,
                         status="failed", reason="ValueError: a crash")
    for record in (ok, ok, failed):  # a duplicate, as an outage's retry could leave
        tracking.log_trial(client, parent, record)
    finished = tracking.prepare_resume(client, parent)
    assert list(finished) == [ok.name]  # the failed trial is run again by --resume
    assert [r.info.run_name for r in tracking.child_runs(client, parent)] == [ok.name]


def test_resume_mirrors_to_the_sweep_its_folder_recorded_for_that_store(tmp_path):
    """Two sweeps of one (suite, profile) in one store (a shared tracking server), each with its
    own folder: each resumes its own run, though the other started later; a folder whose
    recorded run the store lacks (a lost store) gets a new run, which its ledger refills."""
    uri = tracking.default_uri(tmp_path)
    (tmp_path / "mine").mkdir()
    mine = tracking.Mirror.open(uri, tmp_path / "a", SUITE, PROFILE, tmp_path / "mine", {},
                                resume=False)
    time.sleep(0.02)  # start times are in milliseconds
    (tmp_path / "theirs").mkdir()
    theirs = tracking.Mirror.open(uri, tmp_path / "a", SUITE, PROFILE, tmp_path / "theirs", {},
                                  resume=False)
    again = tracking.Mirror.open(uri, tmp_path / "a", SUITE, PROFILE, tmp_path / "mine", {},
                                 resume=True)
    assert again.sweep_id == mine.sweep_id != theirs.sweep_id
    other_uri = tracking.default_uri(tmp_path / "elsewhere")
    moved = tracking.Mirror.open(other_uri, tmp_path / "a", SUITE, PROFILE, tmp_path / "mine",
                                 {}, resume=True)
    assert moved.sweep_id not in (mine.sweep_id, theirs.sweep_id)
    recorded = json.loads((tmp_path / "mine" / tracking.SWEEP_RUNS).read_text())
    assert recorded == {uri: mine.sweep_id, other_uri: moved.sweep_id}


def test_trials_an_earlier_plan_ran_stay_in_the_ledger_but_leave_the_tables(tmp_path):
    """A search range changed before --resume: the old plan's trials stay in the ledger
    (nothing computed is lost) and leave the tables, which read the plan's trials only."""
    from harness.ledger import Ledger, Plan, read_folders
    from harness.record import TrialRecord
    old = TrialRecord(name="dcca[d=8,ridge=1e-06,seed=0]", method="dcca", d=8, profile=PROFILE,
                      metrics={"corr_heldout": 5.0})
    new = TrialRecord(name="dcca[d=8,ridge=1e-08,seed=0]", method="dcca", d=8, profile=PROFILE,
                      metrics={"corr_heldout": 6.0})
    ledger = Ledger(tmp_path)
    for record in (old, new):
        ledger.append(record)
    Plan(SUITE, "two_view", PROFILE, trials=[{"name": new.name}]).save(tmp_path)
    assert [r.name for r in read_folders([tmp_path]).records] == [new.name]
    assert [r.name for r in ledger.records()] == [old.name, new.name]
    Plan(SUITE, "two_view", PROFILE, trials=[{"name": old.name}, {"name": new.name}]).save(tmp_path)
    assert sorted(r.name for r in read_folders([tmp_path]).records) == sorted([old.name, new.name])
