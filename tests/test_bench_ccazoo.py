"""harness.bench.ccazoo: the hyperparameter mapping makes each cca-zoo loss a positive multiple
of ours on the same networks and batch, and a tiny side-by-side run produces finite rows."""
import importlib.util
import math

import numpy as np
import pytest
import torch

# found, not imported: cca_zoo.deep imports lightning, ~12 s that every xdist worker would pay
# while collecting; the tests that need it import it when they run
if not all(importlib.util.find_spec(name) for name in ("cca_zoo", "lightning")):
    pytest.skip("cca-zoo and lightning (the `bench` extra) are not installed",
                allow_module_level=True)

from harness.bench import ccazoo as bz  # noqa: E402
from harness.linalg import canonical_correlations  # noqa: E402
from harness.registry import get as get_method  # noqa: E402

P, D, M = 392, 6, 400


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    h1 = torch.rand(M, P, generator=g)
    h2 = 0.5 * h1.flip(1) + 0.5 * torch.rand(M, P, generator=g)
    return h1, h2


def models(pair, **kw):
    """Our model and the cca-zoo model sharing the very same encoder/decoder modules."""
    params = get_method(pair).params(overrides=kw or None)
    ours = bz.build_ours(pair, D, P, P, seed=0)
    zoo = bz.build_zoo(pair, D, P, P, lr=1e-3, seed=0, kwargs=bz.zoo_kwargs(pair, D, P, params))
    zoo.encoders = torch.nn.ModuleList([ours.enc1, ours.enc2])
    if pair == "dccae":
        zoo.decoders = torch.nn.ModuleList([ours.dec1, ours.dec2])
    return ours, zoo, params


def test_frobenius_loss_is_minus_the_sum_of_squared_canonical_correlations():
    torch.manual_seed(0)
    f1 = torch.randn(300, 5, dtype=torch.float64)
    mix = torch.randn(5, 5, dtype=torch.float64)
    f2 = 0.7 * f1 @ mix + torch.randn(300, 5, dtype=torch.float64)
    loss = bz.frobenius_dcca_loss(f1, f2, ridge=1e-3)["loss"]
    expected = canonical_correlations(f1, f2, ridge=1e-3).pow(2).sum()
    assert abs(float(loss) + float(expected)) < 1e-8
    from cca_zoo.deep.objectives import CCALoss
    zoo = CCALoss(reg_covar=1e-3)([f1.float(), f2.float()])
    assert abs(float(zoo) - float(loss)) < 1e-3 * abs(float(loss))


def test_dcca_frobenius_gradient_matches_cca_zoo():
    ours, zoo, params = models("dcca")
    h1, h2 = batch()
    weights = list(ours.enc1.parameters()) + list(ours.enc2.parameters())
    g_ours = torch.autograd.grad(bz.frobenius_dcca_objective(ours, h1, h2, {}, params)["loss"],
                                 weights)
    g_zoo = torch.autograd.grad(zoo.loss({"views": [h1, h2]})["objective"], weights)
    a, b = torch.cat([g.flatten() for g in g_ours]), torch.cat([g.flatten() for g in g_zoo])
    assert (a - b).norm() < 1e-2 * a.norm()  # (biases of the last layers get ~0 on both sides)


def test_dccae_mapping_scales_the_loss():
    ours, zoo, params = models("dccae")
    h1, h2 = batch()
    lam_zoo = zoo.lam
    assert math.isclose(lam_zoo, params["lam"] * P / (1 + params["lam"] * P))
    mine = bz.frobenius_dccae_objective(ours, h1, h2, {}, params)["loss"]
    theirs = zoo.loss({"views": [h1, h2]})["objective"]
    assert math.isclose(float(theirs.detach()) / (1 - lam_zoo), float(mine.detach()), rel_tol=1e-3)


def test_noi_mapping_scales_the_loss():
    ours, zoo, params = models("sdcca")  # rho = 0: both whiten by the batch's own moments
    h1, h2 = batch()
    zoo.train()
    state = get_method("sdcca").two_view.init_state(D)
    mine = get_method("sdcca").two_view.objective(ours, h1, h2, state, params)["loss"]
    theirs = zoo.loss({"views": [h1, h2]})["objective"]
    assert math.isclose(float(theirs.detach()) / M, float(mine.detach()), rel_tol=1e-3)


def test_sdl_mapping_scales_the_loss():
    ours, zoo, params = models("softcca")
    h1, h2 = batch()
    ours.train(), zoo.train()
    # first batch: our Φ̂ is the batch covariance
    state = get_method("softcca").two_view.init_state(D)
    mine = get_method("softcca").two_view.objective(ours, h1, h2, state, params)["loss"]
    theirs = zoo.loss({"views": [h1, h2]})["objective"]
    assert math.isclose(float(theirs.detach()) * D, float(mine.detach()), rel_tol=1e-4)


def test_tiny_side_by_side_run():
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x1 = rng.random((512, P), dtype=np.float32)
    x2 = (0.5 * x1[:, ::-1] + 0.5 * rng.random((512, P), dtype=np.float32)).astype(np.float32)
    train, test = (x1[:384], x2[:384]), (x1[384:], x2[384:])
    rows = bz.compare(["dcca", "softcca"], train, test, d=4, batch=128, epochs=2, lr=1e-3,
                      seed=0, device=torch.device("cpu"))
    assert [r["ours"] for r in rows] == ["ours", "ours (Frobenius)", "ours", "ours (alpha=0)"]
    for r in rows:
        assert len(r["ours_epoch_s"]) == len(r["zoo_epoch_s"]) == 2
        assert r["ours_s_per_epoch"] > 0 and r["zoo_s_per_epoch"] > 0
        assert math.isfinite(r["ours_corr_heldout"]) and math.isfinite(r["zoo_corr_heldout"])


def test_barlow_twins_and_vicreg_mappings_give_the_same_loss():
    """Same definitions (tests/test_modern_objectives.py): factor 1 on the same networks."""
    h1, h2 = batch()
    for pair in ("barlow_twins", "vicreg"):
        ours, zoo, params = models(pair)
        ours.train(), zoo.train()  # BN on batch statistics on both sides
        mine = get_method(pair).two_view.objective(ours, h1, h2, {}, params)["loss"]
        theirs = zoo.loss({"views": [h1, h2]})["objective"]
        assert math.isclose(float(theirs.detach()), float(mine.detach()), rel_tol=1e-5), pair


def test_dcca_ey_relation_to_cca_zoo():
    """No multiple exists (baselines/dcca_ey.py): cca-zoo's DCCAEY has rewards tr(A) + tr(B) (the
    shifted problem) and penalties tr(V V′) = ¼ tr(B B′); ours: reward 2 tr(A), penalty
    tr(B B′) with B, B′ from the batch's two halves (given to cca-zoo as its independent views)."""
    ours, zoo, params = models("dcca_ey")
    h1, h2 = batch()
    mine = get_method("dcca_ey").two_view.objective(ours, h1, h2, {}, params)
    f1, f2 = (f.detach() for f in ours(h1, h2))
    rewards = zoo.loss({"views": [h1, h2]})["rewards"].detach()
    trace_b = f1.var(0).sum() + f2.var(0).sum()
    assert math.isclose(2 * float(rewards - trace_b), float(mine["reward"]), rel_tol=1e-4,
                        abs_tol=1e-4 * float(trace_b))
    half = M // 2
    penalties = zoo.loss({"views": [h1[:half], h2[:half]],
                          "independent_views": [h1[half:], h2[half:]]})["penalties"].detach()
    assert math.isclose(4 * float(penalties), float(mine["penalty"]), rel_tol=1e-4)


def test_tiny_side_by_side_run_of_the_spec7_pairs():
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x1 = rng.random((384, P), dtype=np.float32)
    x2 = (0.5 * x1[:, ::-1] + 0.5 * rng.random((384, P), dtype=np.float32)).astype(np.float32)
    train, test = (x1[:256], x2[:256]), (x1[256:], x2[256:])
    rows = bz.compare(["dcca_ey", "barlow_twins", "vicreg"], train, test, d=4, batch=128,
                      epochs=2, lr=1e-3, seed=0, device=torch.device("cpu"))
    assert [r["zoo_class"] for r in rows] == ["DCCAEY", "BarlowTwins", "VICReg"]
    for r in rows:
        assert len(r["ours_epoch_s"]) == len(r["zoo_epoch_s"]) == 2
        assert math.isfinite(r["ours_corr_heldout"]) and math.isfinite(r["zoo_corr_heldout"])


def test_ours_at_a_given_configuration_runs_with_those_parameters():
    variants = bz.our_variants("softcca", {"lam": 2.0, "alpha": 0.25})
    assert [v.label for v in variants] == ["ours", "ours (alpha=0)", "ours (lam=2,alpha=0.25)"]
    assert variants[-1].params["lam"] == 2.0 and variants[-1].params["alpha"] == 0.25
    assert variants[0].params == get_method("softcca").params()  # the defaults row stays


def test_ours_flag_names_an_unknown_parameter_in_one_line(capsys):
    with pytest.raises(SystemExit) as err:
        bz.main(["--pairs", "softcca", "--ours", "rho=0.5"])
    assert err.value.code == 2
    assert "softcca has no parameter rho" in capsys.readouterr().err
