"""Known-answer tests for the baselines' pure losses (corrnet, softcca, sdcca, dccae).

Every expected value is a closed form or a hand computation written out here from the
equation in the module docstring, never a recorded output of the code under test.
"""
import numpy as np
import pytest
import torch

from baselines.corrnet import corrnet_loss, pearson_sum
from baselines.dccae import dccae_loss, reconstruction
from baselines.sdcca import init_state as sdcca_init_state
from baselines.sdcca import objective as sdcca_objective
from baselines.sdcca import sdcca_loss, update_running, whiten_target
from baselines.softcca import softcca_loss, stochastic_decorrelation

TOL = 1e-10


def t64(x):
    return torch.tensor(x, dtype=torch.float64)


def hadamard8():
    """8×8 Sylvester–Hadamard matrix: columns 1..7 are centred, mutually orthogonal, ‖·‖² = 8."""
    h2 = np.array([[1.0, 1.0], [1.0, -1.0]])
    return np.kron(np.kron(h2, h2), h2)


# ---------------------------------------------------------------- CorrNet

# Pearson columns chosen by hand (scaled by 1000 so the 1e-8 in the denominator is < 1e-13):
#   column 1: x = (1,2,3,4), y = (2,1,4,3): centred x·y = 3, ‖x‖² = ‖y‖² = 5  → r = 0.6
#   column 2: x = (1,0,0,1), y = (0,2,2,0): y is an affine, decreasing map of x → r = −1
HX = 1000.0 * np.array([[1, 1], [2, 0], [3, 0], [4, 1]], dtype=float)
HY = 1000.0 * np.array([[2, 0], [1, 2], [4, 2], [3, 0]], dtype=float)


def test_pearson_sum_hand_computed_and_against_corrcoef():
    """Σ_k corr_k = 0.6 + (−1) for the hand-made columns, and equals Σ_k np.corrcoef(x_k, y_k)."""
    got = float(pearson_sum(t64(HX), t64(HY)))
    assert abs(got - (0.6 - 1.0)) < TOL
    by_numpy = sum(np.corrcoef(HX[:, k], HY[:, k])[0, 1] for k in range(HX.shape[1]))
    assert abs(got - by_numpy) < TOL


def test_pearson_sum_identical_and_anti_correlated_views_give_plus_minus_d():
    """corr_k(h, h) = 1 and corr_k(h, −h) = −1, so the sum is ±d (d = 3); also invariant to a
    per-column positive affine map of one view (Pearson's invariance)."""
    rng = np.random.default_rng(0)
    h = 100.0 * rng.standard_normal((16, 3))
    assert abs(float(pearson_sum(t64(h), t64(h))) - 3.0) < TOL
    assert abs(float(pearson_sum(t64(h), t64(-h))) + 3.0) < TOL
    affine = h * np.array([2.0, 0.5, 7.0]) + np.array([3.0, -4.0, 10.0])
    assert abs(float(pearson_sum(t64(h), t64(affine))) - 3.0) < TOL


def test_corrnet_loss_hand_computed():
    """recon = (1/m) Σ_j ½(‖z−g(h(x))‖² + ‖z−g(h(y))‖² + ‖z−g(h(x,y))‖²) on m = 2 rows:
    squared row errors (0,1), (1,0), (2,2) → recon = (½·1 + ½·1 + ½·4)/2 = 1.5;
    corr = 0.6 − 1 = −0.4 (above); loss = 1.5 − λ·(−0.4) = 2.3 at λ = 2."""
    z = t64([[1, 2], [3, 4]])
    z_from_x = t64([[1, 2], [3, 5]])    # row errors² 0, 1
    z_from_y = t64([[0, 2], [3, 4]])    # row errors² 1, 0
    z_from_xy = t64([[2, 3], [4, 5]])   # row errors² 2, 2
    out = corrnet_loss(z, z_from_x, z_from_y, z_from_xy, t64(HX), t64(HY), lam=2.0)
    assert abs(float(out["recon"]) - 1.5) < TOL
    assert abs(float(out["corr"]) + 0.4) < TOL
    assert abs(float(out["loss"]) - 2.3) < TOL


def test_corrnet_loss_is_linear_in_lambda_with_slope_minus_corr():
    """loss(λ2) − loss(λ1) = −(λ2 − λ1)·Σ_k corr_k, and with perfect reconstructions
    (all three decoders return z) loss = −λ·Σ_k corr_k; here Σ corr = −0.4."""
    z = t64([[1, 2], [3, 4], [5, 6], [7, 9]])
    args = (z, z.clone(), z.clone(), z.clone(), t64(HX), t64(HY))
    lo, hi = corrnet_loss(*args, lam=2.0), corrnet_loss(*args, lam=10.0)
    assert float(lo["recon"]) == 0.0
    assert abs(float(lo["loss"]) - (-2.0 * -0.4)) < TOL
    assert abs(float(hi["loss"] - lo["loss"]) - (-(10.0 - 2.0) * -0.4)) < TOL


# ---------------------------------------------------------------- Soft CCA

# m = 3, d = 2. Z1ᵀZ1 = [[2,3],[3,6]] → Φ̂1 = /(m−1) = [[1,1.5],[1.5,3]], SDL = 2·1.5 = 3.
#                Z2ᵀZ2 = [[6,3],[3,2]] → Φ̂2 = [[3,1.5],[1.5,1]],   SDL = 3.
# Z1 − Z2 = [[0,2],[−1,−2],[1,0]]: ‖·‖_F² = 10, distance = 10/3.
Z1 = [[1.0, 2.0], [0.0, -1.0], [-1.0, -1.0]]
Z2 = [[1.0, 0.0], [1.0, 1.0], [-2.0, -1.0]]


def test_softcca_first_batch_hand_computed():
    """First batch (no running Φ̂): loss = ‖Z1−Z2‖_F²/m + λ(SDL1+SDL2) = 10/3 + 0.1·(3+3),
    and the stored Φ̂ is the batch ZᵀZ/(m−1)."""
    out = softcca_loss(t64(Z1), t64(Z2), lam=0.1, alpha=0.9)
    assert abs(float(out["distance"]) - 10.0 / 3.0) < TOL
    assert abs(float(out["sdl"]) - 6.0) < TOL
    assert abs(float(out["loss"]) - (10.0 / 3.0 + 0.6)) < TOL
    assert torch.allclose(out["phi1"], t64([[1.0, 1.5], [1.5, 3.0]]), atol=TOL, rtol=0)
    assert torch.allclose(out["phi2"], t64([[3.0, 1.5], [1.5, 1.0]]), atol=TOL, rtol=0)


def test_softcca_loss_is_linear_in_lambda_with_slope_sdl():
    """loss(λ2) − loss(λ1) = (λ2 − λ1)·(SDL1 + SDL2) = (1e-2 − 1e-3)·6."""
    lo = softcca_loss(t64(Z1), t64(Z2), lam=1e-3)["loss"]
    hi = softcca_loss(t64(Z1), t64(Z2), lam=1e-2)["loss"]
    assert abs(float(hi - lo) - (1e-2 - 1e-3) * 6.0) < TOL


def test_sdl_alpha_zero_is_plain_batch_decorrelation_on_three_columns():
    """With α = 0 the running Φ̂ is replaced by C = ZᵀZ/(m−1), so SDL = Σ_{k≠l} |C_kl|
    (written out from the six off-diagonal entries), whatever the old Φ̂."""
    rng = np.random.default_rng(1)
    z = rng.standard_normal((7, 3))
    c = z.T @ z / (7 - 1)
    by_hand = 2 * (abs(c[0, 1]) + abs(c[0, 2]) + abs(c[1, 2]))
    sdl, phi = stochastic_decorrelation(t64(z), t64(100.0 * np.ones((3, 3))), alpha=0.0)
    assert abs(float(sdl) - by_hand) < TOL
    assert np.allclose(phi.numpy(), c, atol=TOL, rtol=0)


def test_sdl_running_average_hand_computed():
    """Φ̂ = α·Φ̂_old + (1−α)·C with C = [[1,1.5],[1.5,3]] (Z1) and Φ̂_old = [[5,−4],[−4,5]]:
    α = 0.5 → off-diagonal 0.5·(−4) + 0.5·1.5 = −1.25, SDL = 2.5; α = 1 keeps the old Φ̂
    (SDL = 8)."""
    old = t64([[5.0, -4.0], [-4.0, 5.0]])
    sdl, phi = stochastic_decorrelation(t64(Z1), old, alpha=0.5)
    assert abs(float(sdl) - 2.5) < TOL
    assert torch.allclose(phi, t64([[3.0, -1.25], [-1.25, 4.0]]), atol=TOL, rtol=0)
    sdl1, phi1 = stochastic_decorrelation(t64(Z1), old, alpha=1.0)
    assert abs(float(sdl1) - 8.0) < TOL
    assert torch.equal(phi1, old)


def test_sdl_gradient_reaches_the_current_batch_only():
    """∂SDL/∂Z = 2(1−α)/(m−1) · Z S with S = sign(Φ̂) off the diagonal (S symmetric); with
    Φ̂_off = −1.25 (α = 0.5, as above) that is 0.5·Z·[[0,−1],[−1,0]] = [[−1,−.5],[.5,0],[.5,.5]].
    The old Φ̂ (stop-gradient) receives no gradient."""
    z = t64(Z1).requires_grad_(True)
    old = t64([[5.0, -4.0], [-4.0, 5.0]]).requires_grad_(True)
    sdl, _ = stochastic_decorrelation(z, old, alpha=0.5)
    sdl.backward()
    assert torch.allclose(z.grad, t64([[-1.0, -0.5], [0.5, 0.0], [0.5, 0.5]]), atol=TOL, rtol=0)
    assert old.grad is None


# ---------------------------------------------------------------- SDCCA

# f1 = [[1,2],[3,0],[5,4],[7,2]]: mean (4,2); centred rows (−3,0),(−1,−2),(1,2),(3,0)
# → Σ = [[20,4],[4,8]]/3.
F1 = [[1.0, 2.0], [3.0, 0.0], [5.0, 4.0], [7.0, 2.0]]
F1_MEAN = [4.0, 2.0]
F1_COV = [[20.0 / 3, 4.0 / 3], [4.0 / 3, 8.0 / 3]]


def test_update_running_first_batch_initialises_whatever_rho():
    """On the first batch μ, Σ become the batch mean and sample covariance (hand values, and
    np.cov), even with ρ = 0.7; the step counter advances."""
    state = sdcca_init_state(2)
    f2 = np.array([[0.0, 1.0], [2.0, 1.0], [1.0, 4.0], [1.0, -2.0]])
    update_running(state, t64(F1), t64(f2), rho=0.7)
    assert torch.allclose(state["mu1"], t64(F1_MEAN), atol=TOL, rtol=0)
    assert torch.allclose(state["cov1"], t64(F1_COV), atol=TOL, rtol=0)
    assert np.allclose(state["mu2"].numpy(), f2.mean(0), atol=TOL, rtol=0)
    assert np.allclose(state["cov2"].numpy(), np.cov(f2, rowvar=False), atol=TOL, rtol=0)
    assert int(state["steps"]) == 1


@pytest.mark.parametrize("rho", [0.0, 0.25, 1.0])
def test_update_running_is_rho_old_plus_one_minus_rho_batch(rho):
    """Second batch: μ ← ρ·μ_old + (1−ρ)·mean(batch), Σ ← ρ·Σ_old + (1−ρ)·cov(batch);
    ρ = 0 gives the batch statistics, ρ = 1 leaves the old ones."""
    state = sdcca_init_state(2)
    update_running(state, t64(F1), t64(F1), rho=rho)          # old = F1's statistics
    g = np.array([[0.0, 0.0], [2.0, 2.0], [4.0, 0.0], [2.0, -2.0]])
    # g: mean (2, 0); centred rows (−2,0),(0,2),(2,0),(0,−2) → cov = [[8,0],[0,8]]/3
    g_mean, g_cov = np.array([2.0, 0.0]), np.eye(2) * 8.0 / 3
    update_running(state, t64(g), t64(g), rho=rho)
    want_mu = rho * np.array(F1_MEAN) + (1 - rho) * g_mean
    want_cov = rho * np.array(F1_COV) + (1 - rho) * g_cov
    for i in ("1", "2"):
        assert np.allclose(state["mu" + i].numpy(), want_mu, atol=TOL, rtol=0)
        assert np.allclose(state["cov" + i].numpy(), want_cov, atol=TOL, rtol=0)
    assert int(state["steps"]) == 2


def test_whiten_target_hand_computed_inverse_square_root():
    """(Σ + rI)^{-1/2} for Σ = [[2,1],[1,2]], r = 1: Σ + I has eigenvalues 4 on (1,1)/√2 and
    2 on (1,−1)/√2, so W = ½[[a+b, a−b],[a−b, a+b]] with a = 1/2, b = 1/√2; t = (f − μ) W."""
    a, b = 0.5, 1.0 / np.sqrt(2.0)
    w = 0.5 * np.array([[a + b, a - b], [a - b, a + b]])
    mu = np.array([1.0, -1.0])
    f = np.array([[1.0, -1.0], [2.0, 0.0], [0.0, -3.0]])
    got = whiten_target(t64(f), t64(mu), t64([[2.0, 1.0], [1.0, 2.0]]), ridge=1.0)
    assert np.allclose(got.numpy(), (f - mu) @ w, atol=TOL, rtol=0)
    assert np.allclose(got.numpy()[1], [0.5, 0.5], atol=TOL, rtol=0)  # (1,1) is an eigenvector


def test_whiten_by_own_batch_covariance_gives_identity_covariance():
    """With μ, Σ the batch's own mean and covariance and r = 0, t has mean 0 and sample
    covariance I; with r > 0 on orthogonal (Hadamard) columns of variance λ_k,
    t_k = f̄_k / √(λ_k + r) exactly. Targets are stop-gradient."""
    rng = np.random.default_rng(2)
    f = rng.standard_normal((50, 3)) @ rng.standard_normal((3, 3)) + 5.0
    t = whiten_target(t64(f).requires_grad_(True), t64(f.mean(0)),
                      t64(np.cov(f, rowvar=False)), ridge=0.0)
    assert not t.requires_grad
    assert np.allclose(t.numpy().mean(0), 0.0, atol=TOL)
    assert np.allclose(np.cov(t.numpy(), rowvar=False), np.eye(3), atol=TOL, rtol=0)

    scales = np.array([1.0, 3.0])
    g = hadamard8()[:, 1:3] * scales + np.array([2.0, -1.0])
    lam = scales ** 2 * 8 / 7                                  # sample variances
    r = 0.5
    t = whiten_target(t64(g), t64([2.0, -1.0]), t64(np.diag(lam)), ridge=r)
    assert np.allclose(t.numpy(), hadamard8()[:, 1:3] * scales / np.sqrt(lam + r), atol=TOL, rtol=0)


def test_sdcca_loss_hand_computed():
    """(1/m) Σ_j ‖f1_j − t2_j‖² + (1/m) Σ_j ‖f2_j − t1_j‖² with row errors² (1,1) and (1,9):
    1 + 5 = 6."""
    f1, t2 = t64([[1, 0], [0, 1]]), t64([[0, 0], [1, 1]])
    f2, t1 = t64([[2, 2], [0, 0]]), t64([[1, 2], [0, 3]])
    assert abs(float(sdcca_loss(f1, f2, t1, t2)["loss"]) - 6.0) < TOL


class IdentityModel:
    """A model whose outputs are its inputs (never factored)."""

    def outputs(self, h1, h2, factored=False):
        return h1, h2


def test_sdcca_objective_is_zero_for_identical_white_views():
    """If f1 = f2 already has mean 0 and covariance I on the batch, ρ = 0, r = 0 whiten it to
    itself, t1 = t2 = f, so the loss is 0. Scaling both views by 2 (covariance 4I) still gives
    targets f, so loss = 2·(1/m) Σ_j ‖2f_j − f_j‖² = 2·‖f_j‖² = 2·(2·7/8) = 3.5 (every row of
    this design has ‖f_j‖² = d·7/8)."""
    f = hadamard8()[:, 1:3] * np.sqrt(7.0 / 8.0)            # mean 0, sample covariance I
    params = {"rho": 0.0, "ridge": 0.0}
    out = sdcca_objective(IdentityModel(), t64(f), t64(f), sdcca_init_state(2), params)
    assert abs(float(out["loss"])) < TOL
    out = sdcca_objective(IdentityModel(), t64(2 * f), t64(2 * f), sdcca_init_state(2), params)
    assert abs(float(out["loss"]) - 2 * 2 * 7.0 / 8.0) < TOL


# ---------------------------------------------------------------- DCCAE

def test_reconstruction_hand_computed():
    """(1/m) Σ_j ‖h_j − ĥ_j‖²: row errors² 1 and 4 → 2.5."""
    assert abs(float(reconstruction(t64([[1, 2], [3, 4]]), t64([[0, 2], [3, 6]]))) - 2.5) < TOL


def dccae_views(rho1=0.8, rho2=0.3):
    """f1 = [c1, c2], f2 = [ρ1 c1 + √(1−ρ1²) c3, ρ2 c2 + √(1−ρ2²) c4] with c_k orthogonal
    centred Hadamard columns of equal norm: Σ11 = Σ22 = (8/7) I, Σ12 = (8/7) diag(ρ1, ρ2), so
    T = diag(ρ1, ρ2) and the canonical correlations are exactly ρ1, ρ2 (ridge 0)."""
    c = hadamard8()
    f1 = np.stack([c[:, 1], c[:, 2]], 1)
    f2 = np.stack([rho1 * c[:, 1] + np.sqrt(1 - rho1 ** 2) * c[:, 3],
                   rho2 * c[:, 2] + np.sqrt(1 - rho2 ** 2) * c[:, 4]], 1)
    return t64(f1), t64(f2)


def test_dccae_loss_hand_computed():
    """loss = −(ρ1 + ρ2) + λ·recon with recon = (1² + 2²)/8 + 3²/8 = 1.75 (three single-entry
    errors on 8 rows): −1.1 + 0.01·1.75."""
    f1, f2 = dccae_views()
    rng = np.random.default_rng(3)
    h1, h2 = rng.standard_normal((8, 3)), rng.standard_normal((8, 4))
    e1, e2 = np.zeros((8, 3)), np.zeros((8, 4))
    e1[0, 0], e1[3, 2], e2[5, 1] = 1.0, -2.0, 3.0
    out = dccae_loss(f1, f2, t64(h1), t64(h1 + e1), t64(h2), t64(h2 + e2), lam=1e-2, ridge=0.0)
    assert abs(float(out["recon"]) - 1.75) < TOL
    assert abs(float(out["corr"]) - 1.1) < TOL
    assert abs(float(out["loss"]) - (-1.1 + 1e-2 * 1.75)) < TOL


def test_dccae_zero_reconstruction_error_is_the_dcca_loss_with_ridge():
    """Perfect decoders: loss = −Σ_k σ_k(T). For f2 = ±f1 with orthogonal columns of sample
    variance λ_k, T = Σ(Σ + rI)^{-1} up to sign, so σ_k = λ_k/(λ_k + r); r = 0 gives −d."""
    scales = np.array([1.0, 2.0, 0.5])
    f = hadamard8()[:, 1:4] * scales
    lam = scales ** 2 * 8 / 7
    h = t64(np.arange(24.0).reshape(8, 3))
    for sign in (1.0, -1.0):
        out = dccae_loss(t64(f), t64(sign * f), h, h.clone(), h, h.clone(), lam=5.0, ridge=0.0)
        assert abs(float(out["loss"]) + 3.0) < TOL
        r = 0.1
        out = dccae_loss(t64(f), t64(sign * f), h, h.clone(), h, h.clone(), lam=5.0, ridge=r)
        assert abs(float(out["loss"]) + (lam / (lam + r)).sum()) < TOL


def test_dccae_uncorrelated_views_and_linearity_in_lambda():
    """Views with Σ12 = 0 (disjoint Hadamard columns) have no correlation, so loss = λ·recon;
    and loss(λ2) − loss(λ1) = (λ2 − λ1)·recon with recon = 4²/8 = 2."""
    c = hadamard8()
    f1, f2 = t64(c[:, 1:3] * [1.0, 3.0]), t64(c[:, 3:6])
    h = t64(np.ones((8, 2)))
    h_hat = h.clone()
    h_hat[2, 1] += 4.0
    lo = dccae_loss(f1, f2, h, h_hat, h, h.clone(), lam=1e-3, ridge=0.0)
    hi = dccae_loss(f1, f2, h, h_hat, h, h.clone(), lam=1e-2, ridge=0.0)
    assert abs(float(lo["corr"])) < TOL
    assert abs(float(lo["loss"]) - 1e-3 * 2.0) < TOL
    assert abs(float(hi["loss"] - lo["loss"]) - (1e-2 - 1e-3) * 2.0) < TOL
