"""Own data (`--suite arrays`) on ordinary files: without labels, with one class, with few
test pairs; a metric that cannot be measured is recorded with its reason and the trial stays
ok; reporting never fails a trial; what cannot work is refused before Ray starts.

`sweep_without_ray` is the sweep's path from file to tables, with the trials called in this
process instead of through Ray (the plan, the suite's checks, the trials, the ledger, the
table build and the summary are the sweep's own)."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from harness import metrics, planner
from harness.common import HarnessError
from harness.ledger import Ledger, read_folders
from harness.suites import get_suite
from tables import build as tables_build
from tests.conftest import correlated_views

PLANTED = (0.9, 0.6)


def write_views(path, n=400, labels=None, p1=5, p2=4, **extra):
    """Two views with canonical correlations PLANTED (then zeros); `labels`: an array, or
    a callable of view 1."""
    x1, x2 = correlated_views(n, PLANTED, p1=p1, p2=p2, seed=1)
    arrays = {"view1": x1.astype(np.float32), "view2": x2.astype(np.float32), **extra}
    if labels is not None:
        arrays["labels"] = labels(x1) if callable(labels) else labels
    np.savez(path, **arrays)
    return path


def sweep_without_ray(path, out, methods=("cca", "dcca"), dims=(2,), epochs=2,
                      hidden=(16, 8), strengths=None):
    """(records, written paths, summary text) of a smoke sweep of the file, trials in-process.
    Raises HarnessError (one line) where the CLI would refuse before Ray starts."""
    suite = get_suite("arrays")
    options = {"data": str(path), "hidden": tuple(hidden), "epochs": epochs}
    folder = Path(out) / "arrays-smoke"
    plan = planner.make_plan(suite, "smoke", list(methods), list(dims), strengths, 0, 1,
                             folder / "checkpoints", options)
    suite.check_inputs(options)
    data = suite.load_data("smoke", options)
    folder.mkdir(parents=True, exist_ok=True)
    plan.save(folder)
    ledger = Ledger(folder)
    for trial in plan.trials:
        ledger.append(suite.trial(trial, data=data))
    written = tables_build.build([folder], out_dir=folder)
    return ledger.records(), written, tables_build.summary(read_folders([folder]))


# --------------------------------------------------------------------------- metrics
def test_recognition_reasons_are_ground_truth_of_the_labels():
    assert metrics.recognition_unavailable(np.zeros(100, int)) == (
        "the test labels hold one class (0); a classifier needs two")
    assert metrics.recognition_unavailable(np.array([0, 1, 0, 1])) == (
        "4 test pairs, fewer than its 5 folds")
    # two classes, but the second only in the last fifth: folds 1-4 train on class 0 alone
    sorted_labels = np.r_[np.zeros(90, int), np.ones(10, int)]
    assert "training folds of fold 5" in metrics.recognition_unavailable(sorted_labels)
    assert metrics.recognition_unavailable(np.arange(100) % 2) is None


def test_a_refit_on_too_few_test_pairs_is_unavailable_not_a_number_of_one():
    """8 test pairs of two 5-column outputs: 10 > 7 dimensions, so a refitted CCA finds
    correlations of 1 whatever the data (shown first, then recorded as not available)."""
    rng = np.random.default_rng(0)
    z1, z2 = rng.standard_normal((8, 5)), rng.standard_normal((8, 5))  # independent
    assert metrics.corr_refit(z1, z2, 5) > 3.9  # ≥ 3 forced ones, and more
    tr = (rng.standard_normal((200, 5)), rng.standard_normal((200, 5)))
    unavailable = {}
    out = metrics.all_metrics(tr, (z1, z2), np.arange(8) % 2, 5, unavailable=unavailable)
    assert set(unavailable) == {"corr_refit", "corr_floor"}
    assert "8 test pairs support at most 3 canonical components" in unavailable["corr_refit"]
    assert set(out) == {"corr_heldout", "corr_diag", *metrics.RECOGNITION}  # 2 classes a fold
    assert all(np.isfinite(list(out.values())))


def test_one_metric_that_raises_leaves_the_trial_ok_with_that_metric_absent_and_its_reason(
        tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("floor exploded")

    path = write_views(tmp_path / "v.npz", labels=lambda x1: (x1[:, 0] > 0).astype(int))
    suite = get_suite("arrays")
    options = {"data": str(path), "hidden": (16, 8), "epochs": 2}
    data = suite.load_data("smoke", options)
    config = {"method": "cca", "d": 2, "profile": "smoke", **options}
    intact = suite.trial(config, data=data)
    monkeypatch.setattr(metrics, "corr_floor", broken)
    record = suite.trial(config, data=data)
    assert record.status == "ok" and record.reason == ""
    assert record.unavailable == {
        "corr_floor": "could not be computed (RuntimeError: floor exploded)"}
    assert "corr_floor" not in record.metrics
    for key, value in intact.metrics.items():  # every other metric as without the failure
        if key != "corr_floor":
            assert record.metrics[key] == pytest.approx(value), key
    assert intact.unavailable == {} and "recog_acc" in intact.metrics


# --------------------------------------------------------------------- file to tables
def test_views_without_labels_have_no_recognition_anywhere(tmp_path):
    path = write_views(tmp_path / "x.npz")
    records, written, summary = sweep_without_ray(path, tmp_path / "runs")
    assert {r.method for r in records} == {"cca", "dcca"}  # each method's strength grid
    assert [r.status for r in records] == ["ok"] * len(records)
    for r in records:
        assert not set(r.metrics) & set(metrics.RECOGNITION) and r.unavailable == {}
        assert np.isfinite(r.metrics["corr_heldout"])
    names = {p.name for p in written}
    assert "table5.md" not in names and "recog_vs_d.png" not in names
    assert {"table1.md", "tables.csv", "corr_vs_d.png"} <= names
    folder = tmp_path / "runs" / "arrays-smoke"
    assert "recog" not in (folder / "tables.csv").read_text()
    assert "recog" not in (folder / "table1.md").read_text()
    assert "recog" not in summary and "n/a" not in summary
    assert not re.search(r"\bnan\b", summary + (folder / "table1.md").read_text())
    cca = records[[r.method for r in records].index("cca")]
    # linear CCA on 400 pairs recovers the planted 0.9 + 0.6 on held-out pairs
    assert cca.metrics["corr_heldout"] == pytest.approx(sum(PLANTED), abs=0.25)


def test_one_class_makes_recognition_not_available_with_its_reason(tmp_path):
    path = write_views(tmp_path / "one.npz", labels=np.full(400, 7))
    records, written, summary = sweep_without_ray(path, tmp_path / "runs")
    why = "the test labels hold one class (7); a classifier needs two"
    for r in records:
        assert r.status == "ok"
        assert r.unavailable == {"recog_acc": why, "recog_acc_swapped": why}
        assert np.isfinite(r.metrics["corr_heldout"])
    folder = tmp_path / "runs" / "arrays-smoke"
    table1, table5 = (folder / "table1.md").read_text(), (folder / "table5.md").read_text()
    note = f"Not available: `recog_acc`, `recog_acc_swapped` (CCA d=2, Deep CCA d=2): {why}."
    assert note in table1 and note in table5 and note in summary
    assert "| CCA | n/a |" in table5 and not re.search(r"\bnan\b", table5 + table1 + summary)
    assert "recog_vs_d.png" not in {p.name for p in written}  # nothing to draw


def test_recognition_on_two_classes_is_measured(tmp_path):
    path = write_views(tmp_path / "two.npz", labels=lambda x1: (x1[:, 0] > 1.0).astype(int))
    records, written, summary = sweep_without_ray(path, tmp_path / "runs", methods=("cca",))
    for r in records:
        assert r.status == "ok" and r.unavailable == {}
        assert 50 <= r.metrics["recog_acc"] <= 100  # labels from a correlated feature of view 1
    assert {"table5.md", "recog_vs_d.png"} <= {p.name for p in written}
    assert "corr / recog%" in summary and "Not available" not in summary


# ------------------------------------------------------------------------ refusals
@pytest.mark.parametrize("make, dims, message", [
    (lambda p: write_views(p, n=40), (30,), "28 training pairs (profile smoke), fewer than the "
                                            "d=30 components asked for"),
    (lambda p: write_views(p, n=40), (28,), "28 training pairs cap the batch at 28, not larger "
                                            "than d=28"),
    (lambda p: write_views(p, n=40, split=np.r_[np.zeros(38), [1, 2]].astype(int)), (2,),
     "split has 1 'val' rows; every split needs at least 3 pairs"),
    (lambda p: write_views(p, n=40, split=np.r_[np.zeros(35), np.ones(5)].astype(int)), (2,),
     "split has no 'test' rows"),
])
def test_what_cannot_work_is_refused_in_one_line_before_any_trial(tmp_path, make, dims, message):
    path = make(tmp_path / "f.npz")
    with pytest.raises(HarnessError) as err:
        sweep_without_ray(path, tmp_path / "runs", dims=dims)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "runs" / "arrays-smoke" / "records.jsonl").exists()


def test_a_constant_view_is_refused(tmp_path):
    x = np.random.default_rng(0).standard_normal((60, 3))
    np.savez(tmp_path / "c.npz", view1=np.ones((60, 4)), view2=x)
    with pytest.raises(HarnessError, match="view1 is constant over the 42 training pairs"):
        sweep_without_ray(tmp_path / "c.npz", tmp_path / "runs")


def test_fewer_training_pairs_than_the_batch_runs_with_the_batch_capped(tmp_path, capsys):
    path = write_views(tmp_path / "small.npz", n=100)  # 70 training pairs, smoke batch 256
    records, _, _ = sweep_without_ray(path, tmp_path / "runs")
    err = capsys.readouterr().err
    notes = [ln for ln in err.splitlines() if ln.startswith("note:") and "small.npz" in ln]
    assert len(notes) == 1 and "the networks train on batches of 70" in notes[0], err
    dcca = records[[r.method for r in records].index("dcca")]
    assert dcca.status == "ok" and dcca.batch == 70


# ------------------------------------------------------------------- the live view
def _finished(name, **record):
    final = json.dumps({"name": name, "method": "cca", "d": 2, "status": "ok",
                        "train_seconds": 1.0, **record})
    return SimpleNamespace(config={"trial": {"name": name}}, status="TERMINATED",
                           last_result={"final": final})


def test_a_failing_progress_view_never_fails_a_trial_and_says_so_once():
    from harness.tune import SweepCallback

    def headline(m):
        raise KeyError("recog_acc")

    stream, kept = io.StringIO(), []
    view = SweepCallback(3, kept.append, stream=stream, headline=headline)
    for name in "abc":
        view.on_trial_complete(0, [], _finished(name, metrics={"corr_heldout": 1.0}))
    assert [r.name for r in kept] == ["a", "b", "c"] and [r.status for r in kept] == ["ok"] * 3
    assert (view.done, view.failed, view.diverged) == (3, 0, 0)
    warnings = [ln for ln in stream.getvalue().splitlines() if "progress view failed" in ln]
    assert len(warnings) == 1 and "KeyError" in warnings[0]


def test_the_progress_line_shows_what_a_trial_has_and_why_the_rest_is_missing():
    from harness.suites.two_view import headline
    from harness.tune import SweepCallback

    stream = io.StringIO()
    view = SweepCallback(2, lambda r: None, stream=stream, headline=headline)
    view.on_trial_complete(0, [], _finished("a", metrics={"corr_heldout": 1.46}))
    why = "the test labels hold one class (0); a classifier needs two"
    view.on_trial_complete(0, [], _finished("b", metrics={"corr_heldout": 1.2},
                                            unavailable={"recog_acc": why,
                                                         "recog_acc_swapped": why}))
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("[1/2 ended: 1 ok, 0 diverged, 0 failed")
    assert lines[0].endswith("a corr_heldout 1.5 (1 s)")
    assert lines[-1].endswith(f"b: recog_acc, recog_acc_swapped not available: {why}")
    assert "2/2 ended: 2 ok" in lines[-1] and "failed" not in stream.getvalue().split("0 failed")[-1]
    assert headline({"corr_heldout": 3.0, "recog_acc": 81.25}) == "corr_heldout 3.0 recog 81.2%"
