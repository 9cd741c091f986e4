"""Deep canonically correlated autoencoders (Wang et al. 2015); docs/methods.md, DCCAE.

loss = dcca_loss(f1, f2) + λ · (1/m) Σ_j (‖h1_j − p(f1(h1_j))‖² + ‖h2_j − q(f2(h2_j))‖²);
the decoders p, q read the (un-normalised) encoder outputs.
"""
from __future__ import annotations

import torch

from baselines.dcca import dcca_loss
from harness.models import apply_mlp
from harness.registry import MethodSpec, Presentation, TwoView, register


def reconstruction(h: torch.Tensor, h_hat: torch.Tensor) -> torch.Tensor:
    """(1/m) Σ_j ‖h_j − ĥ_j‖²."""
    return (h - h_hat).pow(2).sum(1).mean()


def dccae_loss(f1, f2, h1, h1_hat, h2, h2_hat, *, lam: float = 1e-2, ridge: float = 1e-3) -> dict:
    corr_terms = dcca_loss(f1, f2, ridge=ridge)
    recon = reconstruction(h1, h1_hat) + reconstruction(h2, h2_hat)
    return {"loss": corr_terms["loss"] + lam * recon, "corr": corr_terms["corr"],
            "recon": recon.detach()}


def objective(model, h1, h2, state, params):
    # factors at large d, as dcca's objective; the decoders' first layer reads them too
    f1, f2 = model.outputs(h1, h2, factored=True)
    return dccae_loss(f1, f2, h1, apply_mlp(model.dec1, f1), h2, apply_mlp(model.dec2, f2),
                      **params)


SPEC = register(MethodSpec(
    name="dccae", presentation=Presentation("DCCAE"),
    defaults={"lam": 1e-2, "ridge": 1e-3}, strength="lam", grid=(1e-3, 1e-2), valid=(0.0, 1e6),
    search={"lam": (1e-5, 1.0)}, loss_fn=dccae_loss,
    # epoch_cost: measured 2.2x DCCA per epoch (its two decoders; BENCHMARKS.md)
    two_view=TwoView(objective=objective, aligned=False, decoders="views", epoch_cost=2.0),
))
