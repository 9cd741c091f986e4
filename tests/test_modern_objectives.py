"""Known-answer tests for the objectives beyond the paper: dcca_ey, barlow_twins, vicreg.

Every expected value is a closed form or a hand computation written out here from the equation
in the module docstring, never a recorded output of the code under test; then each loss
against cca-zoo 4.0.1's model of the same objective on the same representations.

Test views are built from the columns of the 8×8 Sylvester–Hadamard matrix H: columns 1..7 are
centred, mutually orthogonal, ±1, so with h_k = H[:, k], Σ_j h_k,j h_l,j = 8 δ_kl.
"""
import math

import numpy as np
import pytest
import torch

from baselines.barlow_twins import barlow_twins_loss
from baselines.dcca_ey import dcca_ey_loss
from baselines.vicreg import vicreg_loss
from harness.linalg import canonical_correlations
from harness.models import TwoViewModel
from harness.registry import get as get_method
from tests.conftest import correlated_views

TOL = 1e-10


def hadamard8() -> torch.Tensor:
    h2 = np.array([[1.0, 1.0], [1.0, -1.0]])
    return torch.tensor(np.kron(np.kron(h2, h2), h2), dtype=torch.float64)


H = hadamard8()
h = [H[:, k] for k in range(8)]  # h[1..7]: centred, orthogonal, ‖h_k‖² = 8


def cols(*columns) -> torch.Tensor:
    return torch.stack(list(columns), 1)


def close(got, expected, tol=TOL):
    return abs(float(got) - float(expected)) < tol


# ---------------------------------------------------------------- DCCA-EY
# L = −2 tr(A) + tr(B B′), A = Σ12 + Σ21 on the whole batch (/(m−1)), B and B′ = Σ11 + Σ22 of
# the first and second half (each centred on its own mean, /(m_half − 1)). The views below are
# X = [h1 h2 h3] stacked on top of itself or of 2X (m = 16, halves of 8; every column is centred
# in each half, so centring changes nothing):
#   each half X:    Σ = (8/7) I;      half 2X:  Σ = (32/7) I
#   whole [X; X]:   Σ = (16/15) I;    whole [X; 2X]: Σ = (8 + 32)/15 I = (8/3) I

D = 3
X = cols(h[1], h[2], h[3])
Y = cols(h[4], h[5], h[6])  # orthogonal to X: Σ12 = 0 on every half and on the whole


def test_ey_identical_views():
    """f1 = f2 = [X; X]: A = 2·(16/15) I → 2 tr(A) = 64·3/15 = 12.8; B = B′ = 2·(8/7) I →
    tr(B B′) = 3·(16/7)² = 768/49; L = 768/49 − 12.8."""
    f = torch.cat([X, X])
    terms = dcca_ey_loss(f, f)
    assert close(terms["reward"], 12.8)
    assert close(terms["penalty"], 768 / 49)
    assert close(terms["loss"], 768 / 49 - 12.8)


def test_ey_anti_correlated_and_orthogonal_views():
    """f2 = −f1: A = −2·(16/15) I → L = +12.8 + 768/49. Orthogonal views [X; X], [Y; Y]: A = 0,
    B = B′ = (8/7 + 8/7) I → L = 3·(16/7)² = 768/49."""
    f = torch.cat([X, X])
    assert close(dcca_ey_loss(f, -f)["loss"], 12.8 + 768 / 49)
    terms = dcca_ey_loss(f, torch.cat([Y, Y]))
    assert close(terms["reward"], 0.0) and close(terms["loss"], 768 / 49)


def test_ey_penalty_pairs_the_two_halves():
    """f1 = f2 = [X; 2X]: A = 2·(8/3) I → 2 tr(A) = 32; B = 2·(8/7) I, B′ = 2·(32/7) I →
    tr(B B′) = 3·(16/7)(64/7) = 3072/49 (a same-batch B·B would give 3·(16/3)² = 256 instead,
    a half's own B·B 768/49 or 12288/49); L = 3072/49 − 32."""
    f = torch.cat([X, 2 * X])
    terms = dcca_ey_loss(f, f)
    assert close(terms["reward"], 32.0)
    assert close(terms["penalty"], 3072 / 49)
    assert close(terms["loss"], 3072 / 49 - 32.0)


def test_ey_minimiser_spans_the_top_canonical_subspace():
    """Two linear views with population canonical correlations (0.9, 0.7, 0.4); minimise the EY
    loss over linear maps W1 (6×2), W2 (5×2) on the whole sample (one batch, float64, LBFGS).
    Eckhart–Young: the minimiser spans the top-2 canonical directions and the minimum is
    −(ρ1² + ρ2²). Checked: the canonical correlations of (X W1, Y W2) equal the sample's top-2
    within 5e-3 (sampling differences between the halves' B and B′ perturb the minimiser by
    O(1/√n)), they are within 0.03 of (0.9, 0.7), and the minimum is within 0.01 of −Σ of the
    sample's top-2 squared and within 0.03 of −(0.81 + 0.49) = −1.30."""
    xs, ys = correlated_views(4000, (0.9, 0.7, 0.4), 6, 5, seed=3)
    x, y = torch.tensor(xs), torch.tensor(ys)
    g = torch.Generator().manual_seed(0)
    w1 = (0.1 * torch.randn(6, 2, generator=g, dtype=torch.float64)).requires_grad_(True)
    w2 = (0.1 * torch.randn(5, 2, generator=g, dtype=torch.float64)).requires_grad_(True)
    opt = torch.optim.LBFGS([w1, w2], lr=1, max_iter=500, tolerance_grad=1e-12,
                            tolerance_change=1e-15, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = dcca_ey_loss(x @ w1, y @ w2)["loss"]
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        final = float(dcca_ey_loss(x @ w1, y @ w2)["loss"])
        got = canonical_correlations(x @ w1, y @ w2)
    sample = canonical_correlations(x, y)[:2]
    assert torch.all((got - sample).abs() < 5e-3), (got, sample)
    assert torch.all((got - torch.tensor([0.9, 0.7], dtype=torch.float64)).abs() < 0.03), got
    assert abs(final + float(sample.pow(2).sum())) < 0.01, (final, sample)
    assert abs(final + 1.30) < 0.03, final


# ---------------------------------------------------------------- Barlow Twins
# C = Z1ᵀZ2/m, L = Σ_k (1 − C_kk)² + λ Σ_{k≠l} C_kl². Z = Hadamard columns: ZᵀZ/m = I (m = 8),
# i.e. each column has batch mean 0 and (biased) variance 1, as after BN.

def test_barlow_twins_identical_decorrelated_views_give_zero():
    z = cols(h[1], h[2], h[3])
    terms = barlow_twins_loss(z, z, lam=0.3)
    assert close(terms["loss"], 0.0) and close(terms["corr_diag"], 3.0)


def test_barlow_twins_identical_correlated_views_give_lambda_times_the_off_diagonal():
    """z = [h1, h1, h2]: C = [[1,1,0],[1,1,0],[0,0,1]] → on-diagonal 0, off-diagonal 2, L = 2λ.
    z = [h1, (h1+h2)/√2] (unit variance): C_12 = C_21 = 1/√2 → off-diagonal 2·½ = 1, L = λ."""
    z = cols(h[1], h[1], h[2])
    terms = barlow_twins_loss(z, z, lam=0.3)
    assert close(terms["on_diag"], 0.0) and close(terms["off_diag"], 2.0)
    assert close(terms["loss"], 0.6)
    z = cols(h[1], (h[1] + h[2]) / math.sqrt(2))
    assert close(barlow_twins_loss(z, z, lam=0.3)["loss"], 0.3)


def test_barlow_twins_anti_independent_and_permuted_views():
    """z2 = −z1: C = −I → L = Σ_k (1+1)² = 4·3 = 12. Orthogonal views: C = 0 → L = d = 3.
    z1 = [h1,h2,h3], z2 = [h1,h3,h2]: C = [[1,0,0],[0,0,1],[0,1,0]] → on 0+1+1 = 2, off 2,
    L = 2 + 2λ."""
    z = cols(h[1], h[2], h[3])
    assert close(barlow_twins_loss(z, -z, lam=0.3)["loss"], 12.0)
    assert close(barlow_twins_loss(z, cols(h[4], h[5], h[6]), lam=0.3)["loss"], 3.0)
    assert close(barlow_twins_loss(z, cols(h[1], h[3], h[2]), lam=0.3)["loss"], 2.6)


# ---------------------------------------------------------------- VICReg
# L = λ (1/(m d)) Σ_j ‖z1_j − z2_j‖² + μ [v(z1)+v(z2)] + ν [c(z1)+c(z2)], Var and Cov /(m−1).
# U = √(7/8)·Hadamard columns: unbiased variance (7/8)·8/7 = 1, covariance 0.

U = math.sqrt(7 / 8) * H


def test_vicreg_identical_unit_variance_decorrelated_views_give_zero():
    """Var = 1 → 1 − sqrt(1 + 1e-4) < 0 → v = 0; Cov = I → c = 0; z1 = z2 → invariance 0."""
    z = U[:, 1:4]
    terms = vicreg_loss(z, z)
    assert close(terms["loss"], 0.0) and close(terms["variance"], 0.0)


def test_vicreg_invariance_of_a_shifted_view():
    """z2 = z1 + δ, δ = (1, 2, 2): every row differs by δ → (1/(m d)) Σ_j ‖δ‖² = 9/3 = 3; the
    shift changes neither variance nor covariance → L = 25·3 = 75."""
    z = U[:, 1:4]
    terms = vicreg_loss(z, z + torch.tensor([1.0, 2.0, 2.0], dtype=torch.float64))
    assert close(terms["invariance"], 3.0) and close(terms["loss"], 75.0)


def test_vicreg_variance_hinge_of_constant_and_shrunk_views():
    """Constant views: Var = 0 → v = 1 − sqrt(1e-4) = 0.99 per view, covariance 0 →
    L = 25·2·0.99 = 49.5. z = ½U: Var = ¼ → v = 1 − sqrt(0.2501) per view →
    L = 50·(1 − sqrt(0.2501))."""
    const = torch.full((8, 3), 4.0, dtype=torch.float64)
    terms = vicreg_loss(const, const)
    assert close(terms["variance"], 1.98) and close(terms["loss"], 49.5)
    z = 0.5 * U[:, 1:4]
    assert close(vicreg_loss(z, z)["loss"], 50 * (1 - math.sqrt(0.2501)))


def test_vicreg_covariance_of_duplicated_columns():
    """z = [u1, u1]: Cov = [[1,1],[1,1]] → c = (1/2)(1 + 1) = 1 per view; with ν = 0.5,
    L = 0.5·2 = 1. z = [u1, u1, u2]: c = (1/3)·2 per view → L = ν·4/3."""
    z = cols(U[:, 1], U[:, 1])
    terms = vicreg_loss(z, z, nu=0.5)
    assert close(terms["covariance"], 2.0) and close(terms["loss"], 1.0)
    z = cols(U[:, 1], U[:, 1], U[:, 2])
    assert close(vicreg_loss(z, z, nu=0.5)["loss"], 0.5 * 4 / 3)


# ---------------------------------------------------------------- the objectives' inputs

@pytest.mark.parametrize("name,loss,bn", [("dcca_ey", dcca_ey_loss, False),
                                          ("barlow_twins", barlow_twins_loss, True),
                                          ("vicreg", vicreg_loss, False)])
def test_objective_feeds_the_loss_raw_or_batch_normalised_outputs(name, loss, bn):
    spec = get_method(name)
    assert spec.two_view.batchnorm is bn
    torch.manual_seed(0)
    model = TwoViewModel(7, 5, 3, batchnorm=bn, hidden=(8,))
    h1, h2 = torch.randn(64, 7), torch.randn(64, 5)
    params = spec.params()
    got = spec.two_view.objective(model, h1, h2, {}, params)["loss"]
    reps = model.represent(h1, h2) if bn else model(h1, h2)
    expected = loss(*reps, **{k: params[k] for k in params})["loss"]
    assert torch.allclose(got, expected, rtol=1e-6)


# ---------------------------------------------------------------- against cca-zoo 4.0.1

@pytest.fixture(scope="module")
def zoo():
    pytest.importorskip("cca_zoo")
    pytest.importorskip("lightning")
    from cca_zoo import deep
    return deep


def representations(bn: bool, m=64, d=4, seed=0):
    """Two correlated float64 batches; batch-normalised (biased variance 1) when `bn`."""
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(m, d, generator=g, dtype=torch.float64) @ torch.randn(d, d, generator=g,
                                                                           dtype=torch.float64)
    z2 = 0.6 * z1 + torch.randn(m, d, generator=g, dtype=torch.float64) + 1.5
    if bn:
        z1, z2 = ((z - z.mean(0)) / z.std(0, unbiased=False) for z in (z1, z2))
    return z1, z2


def identity_model(cls, d, **kwargs):
    """A cca-zoo model whose representations are its inputs: our tensors go in as its views."""
    return cls(n_components=d, encoders=[torch.nn.Identity(), torch.nn.Identity()], **kwargs)


def test_barlow_twins_equals_cca_zoo(zoo):
    """Same definition: cca-zoo's objective at lam = λ equals ours (factor 1)."""
    z1, z2 = representations(bn=True)
    model = identity_model(zoo.BarlowTwins, 4, lam=0.02)
    model.bns = torch.nn.ModuleList([torch.nn.Identity(), torch.nn.Identity()])  # z is BN'd
    theirs = model.loss({"views": [z1, z2]})
    ours = barlow_twins_loss(z1, z2, lam=0.02)
    assert close(theirs["objective"], ours["loss"], 1e-10 * abs(float(ours["loss"])))
    assert close(theirs["redundancy"], ours["off_diag"], 1e-10)


def test_vicreg_equals_cca_zoo(zoo):
    """Same normalisations (the paper's): cca-zoo's objective at (sim, std, cov)_coeff = (λ, μ, ν)
    equals ours (factor 1), term by term. (The authors' code halves the variance term.)"""
    z1, z2 = representations(bn=False)
    model = identity_model(zoo.VICReg, 4, sim_coeff=3.0, std_coeff=40.0, cov_coeff=0.7)
    theirs = model.loss({"views": [0.3 * z1, 0.3 * z2]})  # std < 1: the hinge is active
    ours = vicreg_loss(0.3 * z1, 0.3 * z2, lam=3.0, mu=40.0, nu=0.7)
    assert float(ours["variance"]) > 0.1
    assert close(theirs["objective"], ours["loss"], 1e-10 * abs(float(ours["loss"])))
    for zoo_key, key in (("sim_loss", "invariance"), ("var_loss", "variance"),
                         ("cov_loss", "covariance")):
        assert close(theirs[zoo_key], ours[key], 1e-12), key


def test_dcca_ey_against_cca_zoo(zoo):
    """cca-zoo's DCCAEY solves the shifted eigenproblem (A+B)u = (1+ρ)Bu: with C = (A+B)/2,
    V = B/2 its rewards are tr(2C) = tr(A) + tr(B) and its penalties tr(V V′) = ¼ tr(B B′),
    V from "views" and V′ from "independent_views". On the outputs scaled by √2 (covariances
    ×2): penalties(√2·half 1, independent √2·half 2) = tr(B B′) = our penalty (factor 1), and
    rewards(√2·whole) = 2 tr(A) + 2 tr(B) = our reward + 2 tr(Σ11 + Σ22), the whole batch's
    variances (the extra term is the shift; it leaves the minimising subspace unchanged)."""
    z1, z2 = representations(bn=False)
    model = identity_model(zoo.DCCAEY, 4)
    ours = dcca_ey_loss(z1, z2)
    s = math.sqrt(2.0)
    penalties = model.loss({"views": [s * z1[:32], s * z2[:32]],
                            "independent_views": [s * z1[32:], s * z2[32:]]})["penalties"]
    assert close(penalties, ours["penalty"], 1e-10 * float(ours["penalty"]))
    rewards = model.loss({"views": [s * z1, s * z2]})["rewards"]
    trace_b = z1.var(0).sum() + z2.var(0).sum()  # tr(Σ11 + Σ22), /(m−1)
    assert close(rewards - 2 * trace_b, ours["reward"], 1e-10 * float(rewards))
    assert close(-(rewards - 2 * trace_b) + penalties, ours["loss"], 1e-9)
