"""Barlow Twins (Zbontar et al. 2021); docs/methods.md, Barlow Twins.

C = Z1ᵀ Z2 / m with Z_i = BN(f_i(H_i)) (m × d),
loss = Σ_k (1 − C_kk)² + λ Σ_{k≠l} C_kl².

The original uses λ = 5.1e-3 at 8192 dimensions; the default here is cca-zoo's 5e-3. Equal, at
the same λ, to cca-zoo 4.0.1's `BarlowTwins` objective on the same BN outputs (factor 1).
MUC2M's common loss (muc2m/common.py) keeps the diagonal term but decorrelates each view's
auto-correlation instead of the cross-correlation's off-diagonal.
"""
from __future__ import annotations

from harness.lowrank import diag_gram, off_diagonal_sq
from harness.registry import MethodSpec, Presentation, TwoView, register


def barlow_twins_loss(z1, z2, *, lam: float = 5e-3) -> dict:
    """z1, z2: m × d tensors, or `harness.lowrank.LowRank` factors of them (large d)."""
    diag = diag_gram(z1, z2) / z1.shape[0]
    on_diag = (1 - diag).pow(2).sum()
    off_diag = off_diagonal_sq(z1, z2, 1 / z1.shape[0])
    return {"loss": on_diag + lam * off_diag, "on_diag": on_diag.detach(),
            "off_diag": off_diag.detach(), "corr_diag": diag.sum().detach()}


def objective(model, h1, h2, state, params):
    return barlow_twins_loss(*model.represent(h1, h2, factored=True), lam=params["lam"])


SPEC = register(MethodSpec(
    name="barlow_twins", presentation=Presentation("Barlow Twins"),
    defaults={"lam": 5e-3}, strength="lam", grid=(1e-3, 1e-2), valid=(0.0, 1e6),
    search={"lam": (1e-5, 1.0)}, loss_fn=barlow_twins_loss,
    two_view=TwoView(objective=objective, batchnorm=True),
))
