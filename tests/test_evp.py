"""Expected validation performance (tables.evp) against closed forms and a Monte-Carlo
estimate, its grouping of successive-halving rungs, and when the tables draw it."""
import numpy as np
import pandas as pd
import pytest

from harness.ledger import Ledger, MethodInfo, Plan
from harness.record import TrialRecord
from harness.suites.two_view import COLUMNS
from tables import build as tables_build
from tables import evp

VALUES = np.array([3.0, 7.5, 1.0, 4.2, 7.5, 6.1, 2.2])


def test_one_configuration_expects_the_mean_and_many_expect_the_maximum():
    assert evp.expected_max(VALUES, 1) == pytest.approx(VALUES.mean())
    assert evp.expected_max(VALUES, 2000) == pytest.approx(VALUES.max(), abs=1e-9)
    curve = evp.expected_max(VALUES, np.arange(1, 50))
    assert curve.shape == (49,) and (np.diff(curve) >= -1e-12).all()  # never falls


def test_two_values_by_hand():
    # the max of n draws is the low value only when every draw is: probability (1/2)^n
    for n in (1, 2, 3, 5):
        low = 0.5 ** n
        assert evp.expected_max([10.0, 4.0], n) == pytest.approx(4.0 * low + 10.0 * (1 - low))
    assert evp.expected_max([4.0, 10.0], 2) == pytest.approx(4 / 4 + 10 * 3 / 4)


def test_it_matches_a_monte_carlo_estimate_of_the_best_of_n_draws():
    rng = np.random.default_rng(0)
    for n in (2, 4, 9):
        best = rng.choice(VALUES, size=(200_000, n), replace=True).max(axis=1)
        se = best.std() / np.sqrt(len(best))
        assert evp.expected_max(VALUES, n) == pytest.approx(best.mean(), abs=4 * se)


def test_missing_scores_are_left_out_and_n_below_one_is_refused():
    assert evp.expected_max([2.0, np.nan, 4.0], 1) == pytest.approx(3.0)
    assert np.isnan(evp.expected_max([], 3))
    with pytest.raises(ValueError):
        evp.expected_max(VALUES, 0)


def search_row(config, epochs, score, name_epochs=True, status="ok", method="dcca", d=8):
    rung = f",epochs={epochs}" if name_epochs else ""
    return {"name": f"{method}[d={d},ridge=0.001,search={config}{rung}]", "method": method,
            "d": d, "epochs": epochs, "status": status, "val_corr_best": score}


def test_each_configuration_counts_once_at_the_highest_rung_it_reached():
    searched = pd.DataFrame([
        search_row(0, 2, 1.0), search_row(0, 6, 2.0), search_row(0, 18, 3.0, False),
        search_row(1, 2, 1.5), search_row(1, 6, 1.8),                       # stopped at rung 1
        search_row(2, 2, 0.5),                                              # stopped at rung 0
        search_row(3, 2, 0.9), search_row(3, 6, float("nan"), status="diverged"),
        search_row(4, 2, float("nan"), status="diverged"),                 # no finite score
        search_row(0, 2, 9.0, d=16)])
    scores = evp.configuration_scores(searched)
    cell = scores[scores.d == 8].set_index("config").score
    assert cell.to_dict() == {0: 3.0, 1: 1.8, 2: 0.5, 3: 0.9}
    curves = evp.curves(searched)
    assert set(curves) == {("dcca", 8), ("dcca", 16)}
    np.testing.assert_allclose(curves[("dcca", 8)],
                               evp.expected_max([3.0, 1.8, 0.5, 0.9], np.arange(1, 5)))


def test_the_plot_is_deterministic_and_absent_without_search_trials(tmp_path):
    searched = pd.DataFrame([search_row(i, 2, float(s)) for i, s in enumerate((1, 3, 2))]
                            + [search_row(i, 2, float(s), method="cca")
                               for i, s in enumerate((2, 2.5))])
    a = evp.plot(searched, tmp_path / "a.png")
    b = evp.plot(searched, tmp_path / "b.png")
    assert a.read_bytes() == b.read_bytes() and a.read_bytes()[:4] == b"\x89PNG"
    assert evp.plot(searched.iloc[:0], tmp_path / "c.png") is None
    assert not (tmp_path / "c.png").exists()


def sweep_folder(folder, search_mode):
    """A searched sweep of one method at one d: three configurations over two rungs
    (successive halving's names), then the reported seeds of the chosen one."""
    folder.mkdir()
    ledger, trials = Ledger(folder), []
    base = "dcca[d=8,ridge={r},search={i}]"
    for i, (ridge, scores) in enumerate([(1e-3, (1.0, 2.0)), (1e-2, (1.5,)), (1e-1, (0.4,))]):
        for rung, score in enumerate(scores):
            name = base.format(r=ridge, i=i)
            name = name if rung == 1 else f"{name[:-1]},epochs=2]"
            trials.append({"name": name, "phase": "search", "rung": rung, "rungs": [2, 6]})
            ledger.append(TrialRecord(
                name=name, method="dcca", d=8, seed=10_000 + i, profile="smoke",
                strength_name="ridge", strength=ridge, epochs=(2, 6)[rung], phase="search",
                params={"ridge": ridge}, metrics={"val_corr_best": score}))
    for seed in range(2):
        name = f"dcca[d=8,ridge=0.001,seed={seed}]"
        trials.append({"name": name})
        ledger.append(TrialRecord(
            name=name, method="dcca", d=8, seed=seed, profile="smoke", strength_name="ridge",
            strength=1e-3, epochs=6, params={"ridge": 1e-3},
            metrics={"corr_heldout": 2.0 + seed, "val_corr_best": 2.0}))
    Plan("arrays", "two_view", "smoke", trials=trials, columns=COLUMNS, search=search_mode,
         search_trials=3, methods={"dcca": MethodInfo(
             name="dcca", title="DCCA", order=0, strength="ridge",
             search={"ridge": (1e-4, 1.0)})}).save(folder)
    return folder


@pytest.mark.parametrize("mode, drawn", [("halving", True), ("asha", False)])
def test_evp_png_is_drawn_only_for_a_successive_halving_search(tmp_path, mode, drawn):
    folder = sweep_folder(tmp_path / mode, mode)
    written = {p.name for p in tables_build.build([folder])}
    assert ("evp.png" in written) == drawn == (folder / "evp.png").exists()
    assert "table1.md" in written
