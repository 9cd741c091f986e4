"""Correlational neural networks (Chandar et al. 2016); docs/methods.md, CorrNet.

loss = (1/m) Σ_j [ℓ(z_j, g(h(x_j))) + ℓ(z_j, g(h(y_j))) + ℓ(z_j, g(h(x_j, y_j)))] − λ Σ_k corr_k,
z = [x; y], ℓ = ½‖·‖², corr_k the batch Pearson correlation of dimension k of h(X) and h(Y).
Our reading of the joint code for deep encoders: h(x, y) = f1(x) + f2(y), the deep analogue of
CorrNet's W x + V y (a missing view contributes nothing).
"""
from __future__ import annotations

import torch

from harness.registry import MethodSpec, Presentation, TwoView, register


def pearson_sum(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    a, b = a - a.mean(0), b - b.mean(0)
    return ((a * b).sum(0) / (a.norm(dim=0) * b.norm(dim=0) + eps)).sum()


def corrnet_loss(z, z_from_x, z_from_y, z_from_xy, hx, hy, *, lam: float = 2.0) -> dict:
    def half_sq(r):
        return 0.5 * (z - r).pow(2).sum(1).mean()
    recon = half_sq(z_from_x) + half_sq(z_from_y) + half_sq(z_from_xy)
    corr = pearson_sum(hx, hy)
    return {"loss": recon - lam * corr, "recon": recon.detach(), "corr": corr.detach()}


def objective(model, h1, h2, state, params):
    hx, hy = model(h1, h2)
    z = torch.cat([h1, h2], dim=1)
    return corrnet_loss(z, model.dec(hx), model.dec(hy), model.dec(hx + hy), hx, hy, **params)


def objective_original(model, h1, h2, state, params):
    """CorrNet as its authors ran it: a sigmoid code h = σ(W x + V y + b) of one layer, decoded
    linearly. Here σ(a(x)), σ(b(y)) and σ(a(x) + b(y)) with a, b the two linear encoders (so the
    joint code carries both biases: our reading)."""
    a, b = model(h1, h2)
    z = torch.cat([h1, h2], dim=1)
    hx, hy, hxy = torch.sigmoid(a), torch.sigmoid(b), torch.sigmoid(a + b)
    return corrnet_loss(z, model.dec(hx), model.dec(hy), model.dec(hxy), hx, hy, **params)


SPEC = register(MethodSpec(
    name="corrnet", presentation=Presentation("CorrNet"),
    defaults={"lam": 2.0}, strength="lam", grid=(2.0, 10.0), valid=(0.0, 1e6),
    search={"lam": (1e-2, 100.0)}, loss_fn=corrnet_loss,
    # epoch_cost: measured 3.5x DCCA per epoch; 2 keeps enough epochs to converge
    two_view=TwoView(objective=objective, decoders="joint", epoch_cost=2.0),
))


# The original setting (Chandar et al. 2016 on MNIST halves: 50 sigmoid code units, λ = 2),
# a reference check of `corrnet` (README, "Baselines against their references"), not a table
# row: off in `--methods all`.
ORIGINAL_SPEC = register(MethodSpec(
    name="corrnet_orig", presentation=Presentation("CorrNet (original: one sigmoid code layer)"),
    defaults={"lam": 2.0}, strength="lam", grid=(2.0,), valid=(0.0, 1e6),
    loss_fn=corrnet_loss, default_off=("two_view",),
    two_view=TwoView(objective=objective_original, decoders="joint", hidden=(),
                     code_activation="sigmoid"),
))
