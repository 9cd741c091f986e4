"""`--suite arrays --data FILE`: a user's own two views, end to end, and bad files refused."""
import csv
import subprocess
import sys

import numpy as np
import pytest

from harness import run
from tests.conftest import correlated_views
from tests.test_sweep import REPO

PLANTED = (0.9, 0.7, 0.5)  # canonical correlations of the file's two views, then zeros


def write_planted(path, n=3000, labels=True, **extra):
    x1, x2 = correlated_views(n, PLANTED, p1=6, p2=5, seed=0)
    arrays = {"view1": x1.astype(np.float32), "view2": x2.astype(np.float32), **extra}
    if labels:  # two classes, by a feature of view 1
        arrays["labels"] = (x1[:, 0] > np.median(x1[:, 0])).astype(np.int64)
    np.savez(path, **arrays)
    return path


@pytest.mark.sweep
def test_a_random_two_view_file_with_planted_correlations_runs_end_to_end(tmp_path):
    data = write_planted(tmp_path / "views.npz")
    out = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-m", "harness.run", "--suite", "arrays", "--data",
                           str(data), "--profile", "smoke", "--methods", "cca,dcca", "--dims", "3",
                           "--hidden", "32,16", "--epochs", "30", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = out / "arrays-smoke"
    with open(sweep / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["method"] for r in rows} == {"cca", "dcca"} and all(r["status"] == "ok" for r in rows)
    assert {r["hidden"] for r in rows if r["method"] == "dcca"} == {"32,16"}
    planted = sum(PLANTED)  # 2.1 summed over the 3 planted directions
    # 1,000 smoke test pairs: the held-out sum carries ~0.05 of sampling noise
    for r in rows:
        tolerance = 0.1 if r["method"] == "cca" else 0.25  # 30 smoke epochs for the network
        assert abs(float(r["corr_heldout"]) - planted) < tolerance, (r["name"], r["corr_heldout"])
    for name in ("table1.md", "table5.md", "tables.csv", "corr_vs_d.png"):
        assert (sweep / name).is_file(), name
    table1 = (sweep / "table1.md").read_text()
    assert "| Deep CCA |" in table1
    assert "(28.3)" not in table1 and "ours (paper)" not in table1  # MNIST's numbers stay MNIST's


def _bad(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("make, key, message", [
    (lambda p: _bad(p, view1=np.zeros((50, 3))), "view2", "no array 'view2'"),
    (lambda p: _bad(p, view1=np.zeros((50, 3)), view2=np.zeros((40, 2))), "view2",
     "view2 has 40 rows but view1 has 50"),
    (lambda p: _bad(p, view1=np.where(np.eye(50, 3) > 0, np.nan, 1.0), view2=np.ones((50, 2))),
     "view1", "view1 holds 3 NaN/inf values (the first in row 0)"),
    (lambda p: _bad(p, view1=np.array([["a", "b"]] * 50), view2=np.ones((50, 2))), "view1",
     "view1 has dtype <U1, not numbers"),
    (lambda p: _bad(p, view1=np.ones(50), view2=np.ones((50, 2))), "view1",
     "view1 has shape (50,), expected (n, p)"),
    (lambda p: _bad(p, view1=np.ones((50, 3)), view2=np.ones((50, 2)), labels=np.ones(49)),
     "labels", "labels has 49 rows but view1 has 50"),
    (lambda p: _bad(p, view1=np.ones((50, 3)), view2=np.ones((50, 2)), split=np.full(50, 7)),
     "split", "split holds values other than 0, 1, 2"),
    (lambda p: p.write_bytes(b"not a zip") and p, "file", "cannot read it as a .npz"),
])
def test_a_bad_file_is_one_line_naming_the_file_and_key_and_exit_2(tmp_path, capsys, make, key,
                                                                     message):
    path = make(tmp_path / "bad.npz")
    code = run.main(["--suite", "arrays", "--data", str(path), "--profile", "smoke",
                     "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2 and len(errors) == 1, err[-2000:]
    assert str(path) in errors[0] and message in errors[0], errors[0]


def test_without_data_the_suite_says_what_to_pass(tmp_path, capsys):
    assert run.main(["--suite", "arrays", "--out", str(tmp_path)]) == 2
    assert "--suite arrays needs --data FILE" in capsys.readouterr().err
