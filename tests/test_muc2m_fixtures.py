"""Shared helpers of the test_muc2m_* files (no tests here): a one-thread guard, the planted
two-view problem and linear MUC2M models with given weights."""
import numpy as np
import pytest
import torch

from muc2m.model import MUC2M

BLOCK = 10  # planted: features [0, 10) carry the common factor, [10, 20) the view's own factor


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tests run on one thread (they are small), then restore the suite's setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def planted(n: int, seed: int, k_c: int = 3, k_u: int = 3, noise: float = 0.1):
    """h_i = [c A_i , u_i B_i] + noise: c (n, k_c) shared by both views, u_1 and u_2 independent
    of c and of each other; the mixing matrices are fixed, the samples depend on `seed`."""
    rng, mix = np.random.default_rng(seed), np.random.default_rng(1234)
    a1, a2 = mix.standard_normal((k_c, BLOCK)), mix.standard_normal((k_c, BLOCK))
    b1, b2 = mix.standard_normal((k_u, BLOCK)), mix.standard_normal((k_u, BLOCK))
    c = rng.standard_normal((n, k_c))
    u1, u2 = rng.standard_normal((n, k_u)), rng.standard_normal((n, k_u))
    h1 = np.hstack([c @ a1, u1 @ b1]) + noise * rng.standard_normal((n, 2 * BLOCK))
    h2 = np.hstack([c @ a2, u2 @ b2]) + noise * rng.standard_normal((n, 2 * BLOCK))
    return h1.astype(np.float32), h2.astype(np.float32)


def linear_model(u1, u2, v1=None, v2=None, dtype=torch.float64) -> MUC2M:
    """Linear MUC2M (one layer per encoder): weights U_iᵀ (common) and V_iᵀ (individual), zero
    biases, and batch-norm in eval mode with running mean 0 and running variance 1 − eps, i.e.
    exactly the identity, so z_i = U_iᵀ h_i and w_i = V_iᵀ h_i. Weights given as None keep their
    random initialisation."""
    model = MUC2M(d=u1.shape[1], hidden=(), device="cpu").build(u1.shape[0], u2.shape[0])
    model.common.to(dtype)
    model.individual.to(dtype)
    pairs = [(model.common.enc1, u1), (model.common.enc2, u2),
             (model.individual.enc1, v1), (model.individual.enc2, v2)]
    with torch.no_grad():
        for enc, weight in pairs:
            if weight is not None:
                enc[0].weight.copy_(weight.T)
                enc[0].bias.zero_()
        for bn in (model.common.bn1, model.common.bn2, model.individual.bn1, model.individual.bn2):
            bn.running_mean.zero_()
            bn.running_var.fill_(1 - bn.eps)
    return model
