"""Deep CCA (Andrew et al. 2013): maximise the trace norm of T on each batch (SPEC §1 `dcca`).

loss = −Σ_k σ_k(T), T = Σ11^{-1/2} Σ12 Σ22^{-1/2} from the batch outputs f_i(H_i), with ridge r.
The backward is Andrew et al.'s closed form, so autograd never differentiates `eigh`/`svd`
(whose gradients are NaN at repeated eigenvalues):
  Δ12 = Σ11^{-1/2} U Vᵀ Σ22^{-1/2},  Δ11 = −½ Σ11^{-1/2} U D Uᵀ Σ11^{-1/2},
  ∂corr/∂H1 = (2 H̄1 Δ11 + H̄2 Δ12ᵀ)/(m−1)   (and symmetrically for H2).

Whitening uses Cholesky factors Σ = L Lᵀ instead of Σ^{-1/2} (half the cost at d = 1000):
T' = L1⁻¹ Σ12 L2⁻ᵀ = Q1 T Q2ᵀ with Q_i orthogonal, so T' has T's singular values, its singular
vectors are U' = Q1 U, V' = Q2 V, and Σ11^{-1/2} U = L1⁻ᵀ U' (likewise for view 2).
"""
from __future__ import annotations

import torch

from harness.linalg import center, cholesky_whitened_cross
from harness.registry import MethodSpec, register


class TraceNormCorrelation(torch.autograd.Function):
    """Σ_k σ_k(T) of two batches (m × d), computed in float64, with the closed-form backward."""

    @staticmethod
    def forward(ctx, f1, f2, ridge: float):
        x, y = f1.detach().double(), f2.detach().double()
        m = x.shape[0]
        xc, yc = center(x), center(y)
        # A rank-deficient Σ with ridge 0 makes Cholesky fail: the trial is reported as diverged.
        t, l1, l2 = cholesky_whitened_cross(xc, yc, ridge)
        u, s, vh = torch.linalg.svd(t, full_matrices=False)
        a = torch.linalg.solve_triangular(l1.T, u, upper=True)    # Σ11^{-1/2} U
        b = torch.linalg.solve_triangular(l2.T, vh.T, upper=True)  # Σ22^{-1/2} V
        delta12 = a @ b.T
        delta11 = -0.5 * (a * s) @ a.T
        delta22 = -0.5 * (b * s) @ b.T
        grad1 = (2 * xc @ delta11 + yc @ delta12.T) / (m - 1)
        grad2 = (2 * yc @ delta22 + xc @ delta12) / (m - 1)
        ctx.save_for_backward(grad1.to(f1.dtype), grad2.to(f2.dtype))
        return s.sum().to(f1.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        grad1, grad2 = ctx.saved_tensors
        return grad_out * grad1, grad_out * grad2, None


def dcca_loss(f1: torch.Tensor, f2: torch.Tensor, *, ridge: float = 1e-3) -> dict:
    corr = TraceNormCorrelation.apply(f1, f2, ridge)
    return {"loss": -corr, "corr": corr.detach()}


def objective(model, h1, h2, state, params):
    f1, f2 = model(h1, h2)
    return dcca_loss(f1, f2, ridge=params["ridge"])


SPEC = register(MethodSpec(
    name="dcca", title="Deep CCA",
    defaults={"ridge": 1e-3}, strength="ridge", grid=(1e-3, 1e-1), valid=(0.0, 1e6),
    search={"ridge": (1e-8, 1.0)},  # 1e-6 was selected at d = 200: widened
    aligned=False, objective=objective, loss_fn=dcca_loss,
))
