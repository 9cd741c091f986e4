"""`python -m harness.recheck`: retrains a results.csv row from its recorded configuration."""
import json

import pandas as pd
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
