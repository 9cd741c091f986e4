"""`python -m harness.recheck`: retrains a results.csv row from its recorded configuration."""
import json

import pandas as pd
import torch
import pytest

from harness import recheck
from harness.suites import get_suite

CONFIG = {"method": "dcca", "d": 4, "seed": 3, "profile": "smoke",
          "overrides": {"ridge": 0.01}, "epochs": 2}


@pytest.fixture(scope="module")
def results_csv(tmp_path_factory):
    """One finished smoke trial, as a sweep's results.csv records it."""
    record = get_suite("mnist_halves").trial(dict(CONFIG))
    row = record.csv_row(("corr_heldout", "corr_refit", "corr_diag", "recog_acc"))
    row.update(name="dcca[d=4,ridge=0.01,seed=3]", phase="", status="ok")
    path = tmp_path_factory.mktemp("recheck") / "results.csv"
    pd.DataFrame([row]).to_csv(path, index=False)
    return path, record


def test_recheck_retrains_the_recorded_configuration(results_csv, capsys):
    """The same code and configuration retrain to the recorded metrics (a lost parameter, seed
    or learning rate would move them), and the row's times are both reported."""
    path, record = results_csv
    assert recheck.main([str(path), "--d", "4", "--seed", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["corr_heldout_before"] == pytest.approx(record.metrics["corr_heldout"], rel=1e-12)
    assert out["corr_heldout_rel_diff"] < 1e-9
    assert out["train_seconds_after"] > 0


def test_recheck_refuses_what_it_cannot_retrain(results_csv, tmp_path, capsys):
    path, _ = results_csv
    assert recheck.main([str(path), "--d", "999"]) == 2
    assert "no finished trial" in capsys.readouterr().err
    assert recheck.main([str(tmp_path / "missing.csv")]) == 2
    assert "cannot read" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # was torch's set_num_threads traceback
        recheck.main([str(path), "--threads", "0"])
    assert exit_info.value.code == 2
    assert "argument --threads: 0 is below 1" in capsys.readouterr().err


def factored_trial_csv(method: str, folder):
    """A results.csv with one finished smoke trial whose d (12) exceeds its last hidden width
    (8), so that its objective runs on factors."""
    config = {"method": method, "d": 12, "seed": 1, "profile": "smoke", "hidden": (16, 8),
              "epochs": 4}
    row = get_suite("mnist_halves").trial(dict(config)).csv_row(recheck.COMPARED)
    row.update(name=f"{method}[d=12]", phase="", status="ok")
    path = folder / "results.csv"
    pd.DataFrame([row]).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("method", ["dcca", "sdcca", "softcca", "muc2m"])
def test_trained_in_float64_the_factored_and_direct_paths_end_at_the_same_metrics(
        method, tmp_path, capsys):
    """A whole trial (4 epochs, Adam) with d above the last hidden width, so its objective runs
    on factors, retrained on the direct path too: in float64 the two end within the
    1e-6 (measured: ≤ 4e-9 for Deep CCA), though every step's rounding difference has had the
    whole trial to grow. In float32 the same pair differs by ~1e-4 in corr_heldout and ~4e-2 in
    corr_diag: rounding, not the algebra, which is why the check is made in float64."""
    path = factored_trial_csv(method, tmp_path)
    assert recheck.main([str(path), "--against", "direct", "--float64", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["against"] == "direct" and out["float64"]
    for key in recheck.COMPARED:
        assert out[f"{key}_rel_diff"] < 1e-6, (key, out)
    assert torch.get_default_dtype() == torch.float32  # put back for the rest of the session


def test_recheck_against_direct_refuses_direct(results_csv, capsys):
    path, _ = results_csv
    with pytest.raises(SystemExit) as exit_info:
        recheck.main([str(path), "--against", "direct", "--direct"])
    assert exit_info.value.code == 2
    assert "compare the direct path with itself" in capsys.readouterr().err


def test_trace_shows_the_two_paths_start_at_round_off_and_drift(tmp_path, capsys):
    """Step by step, factored vs direct in float64: the first gradients agree to round-off, and
    the printed differences are those of two real runs (nonzero: they did not share tensors)."""
    path = factored_trial_csv("dcca", tmp_path)
    assert recheck.main([str(path), "--float64", "--trace", "3", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3] and all(x["pair"] == "paths" for x in lines)
    assert 0 < lines[0]["grad_rel_diff"] < 1e-12
    assert all(0 < x["param_rel_diff"] < 1e-6 for x in lines)
    assert torch.get_default_dtype() == torch.float32


def test_trace_refuses_zero_steps(results_csv, capsys):
    path, _ = results_csv
    with pytest.raises(SystemExit) as exit_info:
        recheck.main([str(path), "--trace", "0"])
    assert exit_info.value.code == 2
    assert "--trace 0: give a number of steps" in capsys.readouterr().err
