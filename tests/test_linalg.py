"""Linear CCA against synthetic views with known canonical correlations."""
import numpy as np
import pytest
import torch

from baselines.cca import fit_linear_cca
from harness.linalg import LinearCCA, ThinQR, canonical_correlations, pearson_per_dim
from tests.conftest import correlated_views

RHOS = [0.9, 0.7, 0.5, 0.0]


def test_linear_cca_recovers_known_canonical_correlations():
    x, y = correlated_views(20000, RHOS, p1=6, p2=5)
    got = canonical_correlations(x, y, ridge=1e-8, k=4).numpy()
    assert np.allclose(got, RHOS, atol=0.02), got


def test_linear_cca_projections_generalise_to_fresh_samples():
    x, y = correlated_views(20000, RHOS, p1=6, p2=5, seed=1)
    x_new, y_new = correlated_views(20000, RHOS, p1=6, p2=5, seed=2)  # same maps, new samples
    cca = LinearCCA.fit(x, y, k=3, ridge=1e-8)
    assert np.allclose(cca.corrs.numpy(), RHOS[:3], atol=0.02)
    # On the fitting sample the projections' per-dimension correlations are the canonical ones.
    assert np.allclose(pearson_per_dim(*cca.transform(x, y)).numpy(), cca.corrs.numpy(), atol=1e-6)
    # On fresh samples they estimate the population values.
    assert np.allclose(pearson_per_dim(*cca.transform(x_new, y_new)).numpy(), RHOS[:3], atol=0.02)


def test_cca_method_closed_form_reports_at_most_rank_components():
    x, y = correlated_views(5000, RHOS, p1=6, p2=5)
    x = np.c_[x, np.zeros((len(x), 3))]  # constant columns add no canonical direction
    represent = fit_linear_cca(torch.tensor(x), torch.tensor(y), d=50, params={"ridge": 1e-6})
    assert represent.n_components == 5
    z1, z2 = represent(torch.tensor(x), torch.tensor(y))
    assert z1.shape == (5000, 5)
    assert np.allclose(pearson_per_dim(z1, z2).numpy()[:3], RHOS[:3], atol=0.03)


def test_canonical_correlations_match_an_independent_qr_computation():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((400, 7))
    y = x[:, :4] @ rng.standard_normal((4, 6)) + rng.standard_normal((400, 6))
    q1, _ = np.linalg.qr(x - x.mean(0))
    q2, _ = np.linalg.qr(y - y.mean(0))
    expected = np.linalg.svd(q1.T @ q2, compute_uv=False)
    got = canonical_correlations(x, y, ridge=0.0).numpy()
    assert np.allclose(got, expected, atol=1e-8)


def test_thin_qr_by_cholesky_is_householders_up_to_row_signs():
    g = torch.Generator().manual_seed(0)
    v = torch.randn(500, 301, generator=g, dtype=torch.float64)
    qr = ThinQR.of(v)
    assert qr.q is None  # the Cholesky route
    q_ref, r_ref = torch.linalg.qr(v)
    signs = torch.sign(torch.diagonal(r_ref))
    assert torch.allclose(qr.r, signs[:, None] * r_ref, rtol=0, atol=1e-12 * float(r_ref.abs().max()))
    x = torch.randn(301, 7, generator=g, dtype=torch.float64)
    assert torch.allclose(qr.q_times(x), q_ref @ (signs[:, None] * x), rtol=0, atol=1e-12)
    assert torch.equal(qr.gram, v.T @ v)
    y = torch.randn(500, 7, generator=g, dtype=torch.float64)
    assert torch.allclose(qr.qt_times(y, v.T @ y), signs[:, None] * (q_ref.T @ y), rtol=0,
                          atol=1e-12)


@pytest.mark.parametrize("case", ["zero column", "ill-conditioned"])
def test_thin_qr_takes_householder_where_cholesky_would_lose_digits(case):
    g = torch.Generator().manual_seed(1)
    v = torch.randn(60, 20, generator=g, dtype=torch.float64)
    if case == "zero column":  # a last layer without bias: [W, 0], VᵀV singular
        v[:, -1] = 0
    else:  # cond ~ 1e7: Cholesky of VᵀV would keep ~2 digits
        v[:, -1] = v[:, 0] + 1e-7 * v[:, -1]
    qr = ThinQR.of(v)
    assert qr.q is not None  # the Householder route
    eye = torch.eye(20, dtype=torch.float64)
    q = qr.q_times(eye)
    assert torch.allclose(q @ qr.r, v, rtol=0, atol=1e-13)
    y = torch.randn(60, 3, generator=g, dtype=torch.float64)
    assert torch.allclose(qr.qt_times(y, torch.full((20, 3), float("nan"))), q.T @ y)
    assert torch.allclose(q.T @ q, eye, rtol=0, atol=1e-13)
