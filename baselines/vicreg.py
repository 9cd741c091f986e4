"""VICReg (Bardes, Ponce & LeCun 2022; docs/methods.md), on the raw encoder outputs z_i = f_i(H_i).

loss = λ·(1/m) Σ_j ‖z1_j − z2_j‖² / d + μ·[v(z1) + v(z2)] + ν·[c(z1) + c(z2)],
v(z) = (1/d) Σ_k max(0, 1 − sqrt(Var(z_k) + 1e-4)),   c(z) = (1/d) Σ_{k≠l} Cov(z)_kl²,

Var and Cov the unbiased batch estimates (/(m−1)); defaults λ = μ = 25, ν = 1 (the authors').

Normalisations: this is the paper's equation, and cca-zoo 4.0.1's `VICReg` computes exactly it
(F.mse_loss = the (1/(m d)) invariance, mean hinge over d, torch.cov /(m−1), off-diagonal sum
/d, both views' terms summed): the same loss at λ, μ, ν = sim_coeff, std_coeff, cov_coeff
(factor 1). The authors' code (main_vicreg.py) instead AVERAGES the two views' variance terms,
μ·[v(z1) + v(z2)]/2, so its std_coeff = 25 is our μ = 12.5.
"""
from __future__ import annotations

import torch

from harness.lowrank import centered, diag_gram, difference, mean, off_diagonal_sq, sq_norm
from harness.registry import MethodSpec, Presentation, TwoView, register

EPS = 1e-4


def variance_hinge(z) -> torch.Tensor:
    """v(z): mean over dimensions of max(0, 1 − std), std = sqrt(Var + 1e-4)."""
    zc = centered(z)
    var = diag_gram(zc, zc) / (z.shape[0] - 1)
    return torch.relu(1 - torch.sqrt(var + EPS)).mean()


def covariance_penalty(z) -> torch.Tensor:
    """c(z): squared off-diagonal entries of the batch covariance, summed, over d."""
    zc = centered(z)
    return off_diagonal_sq(zc, zc, 1 / (z.shape[0] - 1)) / z.shape[1]


def vicreg_loss(z1, z2, *, lam: float = 25.0, mu: float = 25.0, nu: float = 1.0) -> dict:
    """z1, z2: m × d tensors, or `harness.lowrank.LowRank` factors of them (large d)."""
    m, d = z1.shape
    # (1/m) Σ_j ‖z1_j − z2_j‖² / d, split into the centred batches and their means: the same
    # sum, from the centred Grams that the variance and covariance terms take anyway
    invariance = (sq_norm(difference(centered(z1), centered(z2)))
                  + m * (mean(z1) - mean(z2)).pow(2).sum()) / (m * d)
    variance = variance_hinge(z1) + variance_hinge(z2)
    covariance = covariance_penalty(z1) + covariance_penalty(z2)
    return {"loss": lam * invariance + mu * variance + nu * covariance,
            "invariance": invariance.detach(), "variance": variance.detach(),
            "covariance": covariance.detach()}


def objective(model, h1, h2, state, params):
    z1, z2 = model.outputs(h1, h2, factored=True)  # factors at large d (harness/lowrank.py)
    return vicreg_loss(z1, z2, lam=params["lam"], mu=params["mu"], nu=params["nu"])


# Swept: ν, the decorrelation weight (the λ of Barlow Twins / Soft CCA / MUC2M). c(z) sums
# d(d−1) squared covariances over d, so a given residual covariance per entry weighs ~(d−1)
# against the d-averaged invariance and variance terms: at our d = 10–50 the authors' ν = 1 (at
# 8192 dims) decorrelates two orders of magnitude more weakly, hence the grid {1, 10}.
SPEC = register(MethodSpec(
    name="vicreg", presentation=Presentation("VICReg"),
    defaults={"lam": 25.0, "mu": 25.0, "nu": 1.0}, strength="nu", grid=(1.0, 10.0),
    valid=(0.0, 1e6), search={"nu": (1e-2, 100.0)}, loss_fn=vicreg_loss,
    two_view=TwoView(objective=objective),
))
