"""Property-based tests (Hypothesis) of the own-data path, from file to tables.

Generated files vary in the number of pairs (a handful to thousands), the views' widths and
d against them, constant and duplicated columns, labels (absent, or 1 to many classes,
sometimes sorted), the split (absent, codes, names, one split nearly empty) and the dtype.
Each file either runs to finite metrics with every trial ok, or is refused in one line before
any trial, and it is refused exactly where an independent reading of the file says it cannot
work. Run with `--hypothesis-show-statistics` to see how many examples ran and how they
split between refused and run (the `event`s).

Fast tier: the trials are called in-process (`sweep_without_ray`, the sweep's own plan,
checks, trials, ledger and table build). `OWN_DATA_EXAMPLES` raises the example count.
The sweep tier runs real Ray smoke sweeps of generated files through the CLI.
"""
from __future__ import annotations

import csv
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from harness import metrics
from harness.common import HarnessError
from harness.record import TrialRecord
from tests.test_own_data import sweep_without_ray
from tests.test_sweep import REPO

EXAMPLES = int(os.environ.get("OWN_DATA_EXAMPLES", "8"))
SMOKE_N_TRAIN = 2000  # the smoke profile's training subset
TEST_METRICS = ("corr_heldout", "corr_refit", "corr_floor", "corr_diag")
SPLIT_NAMES = np.array(["train", "val", "test"])


@st.composite
def own_files(draw):
    """(arrays for np.savez, d): two correlated views and the variations above."""
    n = draw(st.one_of(st.integers(4, 19), st.integers(20, 400), st.integers(20, 400),
                       st.integers(400, 3000)))  # a quarter of them too few to split
    p1, p2 = draw(st.integers(1, 10)), draw(st.integers(1, 10))
    d = draw(st.one_of(st.integers(1, 12), st.integers(13, 80)))  # within and past the data
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    shared = rng.standard_normal((n, 1))
    x1 = shared + rng.standard_normal((n, p1))
    x2 = shared @ rng.standard_normal((1, p2)) + rng.standard_normal((n, p2))
    for x, p in ((x1, p1), (x2, p2)):
        constant = draw(st.sets(st.integers(0, p - 1), max_size=p - 1))
        if draw(st.integers(0, 9)) == 0:  # now and then every column
            constant = range(p)
        for col in constant:
            x[:, col] = draw(st.sampled_from([0.0, 1.0, -3.5]))
        if p > 1 and draw(st.booleans()):  # a duplicated column
            x[:, p - 1] = x[:, 0]
    dtype = draw(st.sampled_from(["float32", "float64", "int64", "int8"]))
    scale = draw(st.sampled_from([1e-3, 1.0, 1e3])) if dtype.startswith("float") else 3.0
    arrays = {key: (x * scale).round().astype(dtype) if dtype.startswith("int")
              else (x * scale).astype(dtype) for key, x in (("view1", x1), ("view2", x2))}
    classes = draw(st.sampled_from([None, 1, 2, 3, 10, "each"]))
    if classes is not None:
        c = n if classes == "each" else classes
        labels = rng.integers(0, c, n) + draw(st.sampled_from([0, -5, 1000]))
        arrays["labels"] = np.sort(labels) if draw(st.booleans()) else labels
    split = draw(st.sampled_from([None, "codes", "names", "tiny"]))
    if split is not None:
        codes = rng.choice(3, n, p=[0.6, 0.2, 0.2])
        if split == "tiny":  # one split of 0 to 3 pairs
            which, keep = draw(st.integers(0, 2)), draw(st.integers(0, 3))
            rows = np.flatnonzero(codes == which)
            codes[rows[keep:]] = (which + 1) % 3
        arrays["split"] = SPLIT_NAMES[codes] if split == "names" else codes
    return arrays, d


def expected_refusal(arrays: dict, d: int, methods) -> str | None:
    """What the file format (harness.data.arrays) and the methods say cannot work, read
    independently of the code under test: None where the sweep must run."""
    n = len(arrays["view1"])
    if n < 20:
        return "at least 20 pairs"
    split = arrays.get("split")
    if split is None:  # the documented default: 70/15/15 by a fixed permutation (seed 0)
        order, codes = np.random.default_rng(0).permutation(n), np.empty(n, int)
        cut1, cut2 = int(0.7 * n), int(0.85 * n)
        codes[order[:cut1]], codes[order[cut1:cut2]], codes[order[cut2:]] = 0, 1, 2
    elif split.dtype.kind == "U":
        codes = np.array([list(SPLIT_NAMES).index(s) for s in split])
    else:
        codes = split
    for c in range(3):  # each split in turn: train, val, test
        if not (codes == c).any():
            return "split has no"
        if (codes == c).sum() < 3:
            return "every split needs at least 3 pairs"
    train = np.flatnonzero(codes == 0)[:SMOKE_N_TRAIN]
    if len(train) < d:
        return f"fewer than the d={d} components"
    for key in ("view1", "view2"):
        x = arrays[key].astype(np.float32)[train]
        if (x == x[:1]).all():
            return f"{key} is constant"
    if "dcca" in methods and len(train) <= d:
        return "not larger than d"
    return None


def check_runs_or_is_refused(arrays, d, tmp_path, methods=("cca", "dcca")):
    path = tmp_path / "own.npz"
    np.savez(path, **arrays)
    out = tmp_path / "runs"
    want = expected_refusal(arrays, d, methods)
    try:
        records, written, summary = sweep_without_ray(path, out, methods=methods, dims=(d,),
                                                      strengths=[1e-3], epochs=2)
    except HarnessError as err:
        message = str(err)
        event(f"refused: {re.sub(r'[0-9]+', 'N', str(want))}")
        assert want is not None, f"refused a file that can run: {message}"
        assert "\n" not in message and want in message, (want, message)
        assert not (out / "arrays-smoke" / "records.jsonl").exists()  # before any trial
        return
    assert want is None, f"ran a file that cannot work ({want})"
    labelled = "labels" in arrays
    event(f"ran: labels {'present' if labelled else 'absent'}")
    assert {r.method for r in records} == set(methods)
    for r in records:
        assert r.status == "ok", (r.name, r.reason)
        assert all(np.isfinite(v) for v in r.metrics.values()), r.metrics
        assert all(isinstance(why, str) and why for why in r.unavailable.values())
        assert not set(r.metrics) & set(r.unavailable)  # a number or a reason, never both
        for key in TEST_METRICS + (metrics.RECOGNITION if labelled else ()):
            assert key in r.metrics or key in r.unavailable, (key, r.metrics, r.unavailable)
        if not labelled:
            assert not set(metrics.RECOGNITION) & (set(r.metrics) | set(r.unavailable))
        elif len(np.unique(arrays["labels"])) == 1:
            assert "one class" in r.unavailable["recog_acc"]
        else:
            event("recognition " + ("measured" if "recog_acc" in r.metrics else
                                    "not available"))
        assert TrialRecord.from_dict(r.to_dict()).unavailable == r.unavailable
    names = {p.name for p in written}
    assert "table1.md" in names and ("table5.md" in names) == labelled
    folder = out / "arrays-smoke"
    text = summary + "".join((folder / f).read_text() for f in ("table1.md", "tables.csv"))
    assert not re.search(r"\bnan\b", text), text
    assert ("recog" in text) == labelled


def _views(n, p1=3, p2=3, seed=0, **extra):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, max(p1, p2)))
    return {"view1": x[:, :p1].astype(np.float32),
            "view2": x[:, :p2] + rng.standard_normal((n, p2)), **extra}


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@example(file=(_views(200), 2))  # no labels
@example(file=(_views(200, labels=np.full(200, 4)), 2))  # one class
# two classes sorted, 8 test pairs: a training fold of one class, and a forced refit at d = 4
@example(file=(_views(60, p1=2, p2=5, labels=np.r_[np.zeros(56), np.ones(4)].astype(int),
                      split=np.r_[np.zeros(46), np.ones(6), 2 * np.ones(8)].astype(int)), 4))
@given(own_files())
def test_an_own_file_runs_to_finite_metrics_or_is_refused_in_one_line(tmp_path_factory, file):
    arrays, d = file
    check_runs_or_is_refused(arrays, d, tmp_path_factory.mktemp("own"))


@settings(max_examples=5 * EXAMPLES, deadline=None, database=None)
@given(n=st.integers(5, 300), k1=st.integers(0, 8), k2=st.integers(0, 8),
       classes=st.integers(1, 6), sort=st.booleans(), seed=st.integers(0, 2 ** 32 - 1),
       aligned=st.booleans())
def test_every_metric_is_a_finite_number_or_absent_with_its_reason(n, k1, k2, classes, sort,
                                                                   seed, aligned):
    """all_metrics on any representations and labels: each metric finite or unavailable,
    and unavailable exactly where the reasons' own conditions say."""
    rng = np.random.default_rng(seed)
    tr = (rng.standard_normal((200, k1)), rng.standard_normal((200, k2)))
    te = (rng.standard_normal((n, k1)), rng.standard_normal((n, k2)))
    labels = rng.integers(0, classes, n)
    labels = np.sort(labels) if sort else labels
    unavailable = {}
    out = metrics.all_metrics(tr, te, labels, max(k1, k2, 1), aligned=aligned,
                              unavailable=unavailable)
    assert all(np.isfinite(v) for v in out.values())
    assert set(out) | set(unavailable) == set(TEST_METRICS + metrics.RECOGNITION)
    assert not set(out) & set(unavailable)
    refit_forced = k1 + k2 > n - 1  # centred n pairs span n-1 dimensions
    assert ("corr_refit" in unavailable) == refit_forced or "could not" in unavailable.get(
        "corr_refit", "")
    if len(np.unique(labels)) == 1:
        assert "one class" in unavailable["recog_acc"]
    event("recognition " + ("measured" if "recog_acc" in out else "not available"))


# ----------------------------------------------------------------------------- sweep tier
def _cli_sweep(path, out, d):
    return subprocess.run([sys.executable, "-m", "harness.run", "--suite", "arrays", "--data",
                           str(path), "--profile", "smoke", "--methods", "cca,dcca", "--dims",
                           str(d), "--strengths", "0.001", "--hidden", "16,8", "--epochs", "2",
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=600)


def _one_class():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 4))
    return {"view1": x.astype(np.float32), "view2": (x[:, :3] + rng.standard_normal((300, 3))),
            "labels": np.zeros(300, np.int64)}, 2


@pytest.mark.sweep
@settings(max_examples=1, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@example(file=_one_class())
@example(file=({"view1": np.ones((10, 2)), "view2": np.ones((10, 2))}, 1))  # refused
@given(own_files().filter(lambda file: expected_refusal(*file, ("cca", "dcca")) is None))
def test_a_ray_smoke_sweep_of_a_generated_file_ends_every_trial_ok_or_refuses_before_ray(
        tmp_path_factory, file):
    arrays, d = file
    tmp = tmp_path_factory.mktemp("sweep")
    np.savez(tmp / "own.npz", **arrays)
    proc = _cli_sweep(tmp / "own.npz", tmp / "runs", d)
    output = proc.stdout + proc.stderr
    want = expected_refusal(arrays, d, ("cca", "dcca"))
    assert "Traceback" not in output, output[-3000:]
    if want is not None:
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        assert proc.returncode == 2 and len(errors) == 1 and want in errors[0], output[-2000:]
        assert "cluster:" not in output  # refused before Ray started
        return
    assert proc.returncode == 0, output[-3000:]
    assert re.search(r"\[2/2 ended: 2 ok, 0 diverged, 0 failed", output), output[-3000:]
    folder = tmp / "runs" / "arrays-smoke"
    with open(folder / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and {r["status"] for r in rows} == {"ok"}
    assert (folder / "table5.md").exists() == ("labels" in arrays)
