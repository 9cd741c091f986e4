"""The paired bootstrap of corr_heldout and the tie marks it makes, against ground truth:
a brute-force bootstrap, the known sampling spread of Gaussian canonical correlations, and
cells whose ranking is known by construction."""
import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import correlated_views

from harness import metrics, paired, report
from harness.ledger import Ledger, MethodInfo, Plan
from harness.linalg import LinearCCA
from harness.record import TrialRecord, csv_columns
from harness.suites.two_view import COLUMNS
from tables import build as tables_build

RHOS = (0.9, 0.6, 0.3)


@pytest.fixture(scope="module")
def gaussian():
    """Train and test views with canonical correlations RHOS (same mixing maps)."""
    train = correlated_views(20_000, RHOS, 5, 4, seed=1)
    test = correlated_views(2_000, RHOS, 5, 4, seed=2)
    return train, test


def test_each_replicate_is_the_brute_force_bootstrap_of_corr_heldout(gaussian):
    (tr1, tr2), (te1, te2) = gaussian
    k = len(RHOS)
    reps = paired.heldout_replicates(tr1, tr2, te1, te2, k)
    # brute force: the CCA fitted on train, the test pairs resampled by the documented
    # generator, numpy's corrcoef per component on the resampled rows
    cca = LinearCCA.fit(tr1, tr2, k=k)
    p1, p2 = (np.asarray(p) for p in cca.transform(te1, te2))
    idx = np.random.default_rng(paired.BOOT_SEED).integers(0, len(te1), size=(paired.N_BOOT,
                                                                               len(te1)))
    brute = [sum(np.corrcoef(p1[i, j], p2[i, j])[0, 1] for j in range(k)) for i in idx]
    assert reps.shape == (paired.N_BOOT,)
    np.testing.assert_allclose(reps, brute, rtol=0, atol=1e-9)


def test_replicates_centre_on_corr_heldout_with_the_sampling_spread_of_canonical_correlations(
        gaussian):
    (tr1, tr2), (te1, te2) = gaussian
    k, n = len(RHOS), len(te1)
    reps = paired.heldout_replicates(tr1, tr2, te1, te2, k)
    observed = metrics.corr_heldout(tr1, tr2, te1, te2, k)
    # Gaussian pairs: a sample correlation's variance is (1 − ρ²)² / n, and the canonical
    # components are independent, so the sum's standard deviation is known
    truth = math.sqrt(sum((1 - r ** 2) ** 2 for r in RHOS) / n)
    assert reps.std() == pytest.approx(truth, rel=0.2)  # 200 replicates: ±5 % per σ
    assert abs(reps.mean() - observed) < 0.3 * truth
    assert observed == pytest.approx(sum(RHOS), abs=4 * truth)


def test_replicate_b_draws_the_same_test_pairs_in_every_trial():
    a, b = paired.bootstrap_indices(50), paired.bootstrap_indices(50)
    np.testing.assert_array_equal(a, b)
    counts = paired.bootstrap_counts(50)
    assert counts.shape == (paired.N_BOOT, 50) and (counts.sum(1) == 50).all()
    np.testing.assert_array_equal(counts[3], np.bincount(a[3], minlength=50))


def test_the_replicates_round_trip_through_the_ledger_and_stay_out_of_csv_and_mlflow(tmp_path):
    reps = paired.stored(np.linspace(10, 11, paired.N_BOOT))
    rec = TrialRecord(name="cca[d=4,seed=0]", method="cca", d=4, metrics={"corr_heldout": 10.5},
                      replicates=reps)
    Ledger(tmp_path).append(rec)
    back = Ledger(tmp_path).records()[0]
    assert back.replicates == reps and TrialRecord.from_dict(rec.to_dict()) == rec
    assert all(v == round(v, paired.DIGITS) for v in back.replicates)
    row = back.csv_row(COLUMNS)
    assert "replicates" not in row and "replicates" not in csv_columns([row], COLUMNS)
    assert {key for key, _, _ in back.mlflow_metrics()} == {"corr_heldout"}
    old = json.loads(Ledger(tmp_path).path.read_text())
    del old["replicates"]  # a ledger line written before replicates were kept
    assert TrialRecord.from_dict(old).replicates == []


# ------------------------------------------------------------------------------- tie marks
D = 4


def views(rho: float, n: int, seed: int, noise=None):
    """Two views sharing a latent z (n × 3), each z plus its own noise of std σ, with σ set
    so each component's correlation is `rho`; `noise` fixes the noise draws (shared seeds)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 3))
    e1, e2 = noise if noise is not None else (rng.standard_normal((n, 3)),
                                              rng.standard_normal((n, 3)))
    sigma = math.sqrt(1 / rho - 1)  # corr(z + σe1, z + σe2) = 1 / (1 + σ²)
    return z + sigma * e1, z + sigma * e2


def trial(method: str, seed: int, train, test, replicates: bool = True) -> TrialRecord:
    corr = metrics.corr_heldout(*train, *test, 3)
    reps = paired.stored(paired.heldout_replicates(*train, *test, 3)) if replicates else []
    return TrialRecord(name=f"{method}[d={D},seed={seed}]", method=method, d=D, seed=seed,
                       profile="smoke", epochs=2, metrics={"corr_heldout": corr,
                                                           "val_corr_best": corr},
                       replicates=reps)


def cells(records):
    df = pd.DataFrame([r.table_row(("corr_heldout", "val_corr_best")) for r in records])
    sel = report.select(df, "val_corr_best")
    return df, sel


def marks_of(records, use_replicates=True):
    df, sel = cells(records)
    tests = set()
    reps = report.cell_replicates(df, sel, records) if use_replicates else None
    return report.marks(sel, "corr_heldout", replicates=reps, tests=tests), tests


def seeded(method, rho_of_seed, n_test=3000, shared_noise=None, replicates=True, draws=0):
    """Three seeds of a 'method': its train and test representations at each seed's rho
    (`draws`: which draws of the latent and noise; the same draws give paired methods)."""
    out = []
    for seed in range(3):
        rho = rho_of_seed(seed)
        noise = shared_noise(seed) if shared_noise else None
        train = views(rho, 4000, 100 + seed + 1000 * draws, noise=noise and noise[0])
        test = views(rho, n_test, 200 + seed + 1000 * draws, noise=noise and noise[1])
        out.append(trial(method, seed, train, test, replicates))
    return out


def test_a_clear_margin_is_not_a_tie():
    strong = seeded("strong", lambda s: 0.8)
    weak = seeded("weak", lambda s: 0.7, draws=1)  # independent draws: no shared noise
    found, tests = marks_of(strong + weak)
    assert found == {("strong", D): "best"} and tests == {"paired"}


def test_identical_representations_with_tiny_noise_tie():
    rng = np.random.default_rng(7)
    base = seeded("base", lambda s: 0.7)
    twin = []
    for seed, rec in enumerate(base):
        train = views(0.7, 4000, 100 + seed)
        test = tuple(v + 1e-6 * rng.standard_normal(v.shape) for v in views(0.7, 3000, 200 + seed))
        twin.append(trial("twin", seed, train, test))
    found, tests = marks_of(base + twin)
    assert set(found.values()) == {"best", "tie"} and len(found) == 2 and tests == {"paired"}


def test_pairing_separates_a_consistent_gap_that_the_seed_spread_calls_a_tie():
    """Each seed's quality varies widely but is shared by both methods (the same noise draws,
    the same test pairs); one method is better by a little at every seed. The seed spread
    swamps the gap (a tie by summed standard deviations); the paired difference does not."""
    quality = {0: 0.3, 1: 0.55, 2: 0.8}

    def noise(seed):  # each seed's own noise draws, the same for both methods
        rng = np.random.default_rng(900 + seed)
        return [[rng.standard_normal((n, 3)) for _ in range(2)] for n in (4000, 3000)]

    low = seeded("low", lambda s: quality[s], shared_noise=noise)
    high = seeded("high", lambda s: quality[s] + 0.03, shared_noise=noise)
    spread_marks, spread_tests = marks_of(low + high, use_replicates=False)
    assert spread_marks == {("high", D): "best", ("low", D): "tie"} and spread_tests == {"spread"}
    _, sel = cells(low + high)
    means = sel.set_index("method").corr_heldout_mean
    assert means["high"] - means["low"] > 0.05  # a real gap, at every seed
    paired_marks, paired_tests = marks_of(low + high)
    assert paired_marks == {("high", D): "best"} and paired_tests == {"paired"}


def test_paired_interval_pairs_by_seed_and_refuses_what_cannot_be_paired():
    base = np.linspace(-1, 1, 200)
    best = {0: base + 5.0, 1: base + 6.0}
    cell = {0: base + 4.0, 1: base + 5.0, 2: base}  # seed 2 has no partner: left out
    assert paired.paired_interval(cell, best) == pytest.approx((-1.0, -1.0))
    assert paired.tied(cell, best) is False and paired.tied(best, best) is True
    assert paired.paired_interval({3: base}, best) is None            # no seed in common
    assert paired.paired_interval({0: base[:100]}, best) is None      # other resamplings


def test_a_cell_without_replicates_falls_back_to_the_seed_spread_and_its_old_text():
    strong = seeded("strong", lambda s: 0.8)
    weak = seeded("weak", lambda s: 0.7, replicates=False)
    found, tests = marks_of(strong + weak)
    assert found == {("strong", D): "best"} and tests == {"spread"}
    assert report.ties_text(tests) == report.SPREAD_TIES
    assert "paired test" in report.ties_text({"paired"}, 200)
    both = report.ties_text({"paired", "spread"}, 200)
    assert "paired test" in both and "summed standard deviations" in both


def test_no_cell_is_marked_at_a_d_with_an_unconverged_cell_even_with_replicates():
    records = seeded("strong", lambda s: 0.8) + seeded("weak", lambda s: 0.7)
    df, sel = cells(records)
    reps = report.cell_replicates(df, sel, records)
    assert report.marks(sel, "corr_heldout", exclude={("weak", D)}, replicates=reps) == {}


def test_tables_say_which_test_made_the_marks(tmp_path):
    """A sweep whose trials recorded replicates gets the paired test and says so; the same
    sweep without them keeps the summed-std test and its text."""
    records = seeded("strong", lambda s: 0.8) + seeded("weak", lambda s: 0.79)
    for with_replicates in (True, False):
        folder = tmp_path / f"sweep-{with_replicates}"
        folder.mkdir()
        ledger = Ledger(folder)
        for r in records:
            ledger.append(TrialRecord.from_dict({**r.to_dict(), "replicates": (
                r.replicates if with_replicates else [])}))
        Plan("arrays", "two_view", "smoke", trials=[{"name": r.name} for r in records],
             columns=COLUMNS, methods={m: MethodInfo(name=m, title=m.upper(), order=i)
                                       for i, m in enumerate(("strong", "weak"))}).save(folder)
        tables_build.build([folder])
        table1 = (folder / "table1.md").read_text()
        assert ("by a paired test" in table1) == with_replicates
        assert (report.SPREAD_TIES in table1) != with_replicates
        if with_replicates:
            assert f"the same {paired.N_BOOT} resamplings" in table1
        assert not (folder / "evp.png").exists()  # no search
