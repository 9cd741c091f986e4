"""Deep CCA (Andrew et al. 2013): maximise the trace norm of T on each batch (docs/methods.md).

loss = −Σ_k σ_k(T), T = Σ11^{-1/2} Σ12 Σ22^{-1/2} from the batch outputs f_i(H_i), with ridge r.
The backward is Andrew et al.'s closed form, so autograd never differentiates `eigh`/`svd`
(whose gradients are NaN at repeated eigenvalues):
  Δ12 = Σ11^{-1/2} U Vᵀ Σ22^{-1/2},  Δ11 = −½ Σ11^{-1/2} U D Uᵀ Σ11^{-1/2},
  ∂corr/∂H1 = (2 H̄1 Δ11 + H̄2 Δ12ᵀ)/(m−1)   (and symmetrically for H2).

At d above the last hidden width the outputs come as factors (harness/lowrank.py), and
`FactoredTraceNormCorrelation` computes the same σ_k and gradient from k × k moments.

Whitening uses Cholesky factors Σ = L Lᵀ instead of Σ^{-1/2} (half the cost at d = 1000):
T' = L1⁻¹ Σ12 L2⁻ᵀ = Q1 T Q2ᵀ with Q_i orthogonal, so T' has T's singular values, its singular
vectors are U' = Q1 U, V' = Q2 V, and Σ11^{-1/2} U = L1⁻ᵀ U' (likewise for view 2).
"""
from __future__ import annotations

import torch

from harness.linalg import ThinQR, center, ridge_cov
from harness.lowrank import LowRank, full
from harness.registry import MethodSpec, Presentation, TwoView, register


def trace_norm_core(s11, s22, s12, ridge: float):
    """Σ_k σ_k(T) from the moments, with a = Σ11^{-1/2} U, b = Σ22^{-1/2} V and σ, from which
    the gradient's matrices are Δ11 = −½ a diag(σ) aᵀ, Δ22 = −½ b diag(σ) bᵀ, Δ12 = a bᵀ
    (module docstring). Whitening by Cholesky: Σii + ridge·I = Li Liᵀ, T' = L1⁻¹ Σ12 L2⁻ᵀ has
    T's singular values; returns (corr, a, σ, b)."""
    eye = torch.eye(s11.shape[0], dtype=s11.dtype, device=s11.device)
    # A rank-deficient Σ with ridge 0 makes Cholesky fail: the trial is reported as diverged.
    l1 = torch.linalg.cholesky(s11 + ridge * eye)
    l2 = torch.linalg.cholesky(s22 + ridge * torch.eye(s22.shape[0], dtype=s22.dtype,
                                                       device=s22.device))
    t = torch.linalg.solve_triangular(l1, s12, upper=False)
    t = torch.linalg.solve_triangular(l2, t.T, upper=False).T
    u, s, vh = torch.linalg.svd(t, full_matrices=False)
    a = torch.linalg.solve_triangular(l1.T, u, upper=True)    # Σ11^{-1/2} U
    b = torch.linalg.solve_triangular(l2.T, vh.T, upper=True)  # Σ22^{-1/2} V
    return s.sum(), a, s, b


class TraceNormCorrelation(torch.autograd.Function):
    """Σ_k σ_k(T) of two batches (m × d), computed in float64, with the closed-form backward."""

    @staticmethod
    def forward(ctx, f1, f2, ridge: float):
        x, y = f1.detach().double(), f2.detach().double()
        m = x.shape[0]
        xc, yc = center(x), center(y)
        corr, a, s, b = trace_norm_core(ridge_cov(xc), ridge_cov(yc), ridge_cov(xc, yc), ridge)
        delta11, delta22, delta12 = -0.5 * (a * s) @ a.T, -0.5 * (b * s) @ b.T, a @ b.T
        grad1 = (2 * xc @ delta11 + yc @ delta12.T) / (m - 1)
        grad2 = (2 * yc @ delta22 + xc @ delta12) / (m - 1)
        ctx.save_for_backward(grad1.to(f1.dtype), grad2.to(f2.dtype))
        return corr.to(f1.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        grad1, grad2 = ctx.saved_tensors
        return grad_out * grad1, grad_out * grad2, None


def gradient_kernel(a, s, b, r1, r2):
    """ã = R1ᵀ a, b̃ = R2ᵀ b and the 2k × 2k K with [∂/∂P1, ∂/∂P2] = [P1c, P2c] K/(m−1)
    (`FactoredTraceNormCorrelation`)."""
    a_t, b_t = r1.T @ a, r2.T @ b
    k11, k22, k21 = -(a_t * s) @ a_t.T, -(b_t * s) @ b_t.T, b_t @ a_t.T
    return a_t, b_t, torch.cat([torch.cat([k11, k21.T], 1), torch.cat([k21, k22], 1)], 0)


class FactoredTraceNormCorrelation(torch.autograd.Function):
    """The same Σ_k σ_k(T) and gradient for outputs given as factors X_i = P_i V_iᵀ
    (`harness.lowrank.LowRank`, P_i m × k, V_i d × k; k < d), in float64, at k × k cost.

    With V_i = Q_i R_i (thin QR) the coordinates X_i Q_i = P_i R_iᵀ are an isometry of the
    outputs, so the moments are Σ_ij = R_i Ĉ_ij R_jᵀ with Ĉ_ij = P_icᵀ P_jc/(m−1), and T has the
    same non-zero singular values. With a, σ, b from `trace_norm_core` in those coordinates
    (Δ11 = −½ a σ aᵀ, Δ12 = a bᵀ) and ã = R1ᵀ a, b̃ = R2ᵀ b, the gradient wrt X1 is G1 Q1ᵀ,
    G1 = (2 P1c R1ᵀ Δ11 + P2c R2ᵀ Δ12ᵀ)/(m−1), so
      ∂/∂P1 = G1 R1 = (P1c (−ã σ ãᵀ) + P2c (b̃ ãᵀ))/(m−1),
      ∂/∂V1 = Q1 G1ᵀ P1 = Q1 (2 Δ11 R1 Ĉ11 + Δ12 R2 Ĉ21) = Q1 a (−σ ãᵀ Ĉ11 + b̃ᵀ Ĉ21)
    (and symmetrically for view 2); both views' ∂/∂P in one product [P1c, P2c] K."""

    @staticmethod
    def forward(ctx, p1, v1, p2, v2, ridge: float):
        m = p1.shape[0]
        p1c, p2c = center(p1.detach().double()), center(p2.detach().double())
        qr1, qr2 = ThinQR.of(v1.detach().double()), ThinQR.of(v2.detach().double())
        r1, r2 = qr1.r, qr2.r
        c11, c22, c12 = ridge_cov(p1c), ridge_cov(p2c), ridge_cov(p1c, p2c)
        corr, a, s, b = trace_norm_core(r1 @ c11 @ r1.T, r2 @ c22 @ r2.T, r1 @ c12 @ r2.T, ridge)
        a_t, b_t, kernel = gradient_kernel(a, s, b, r1, r2)
        kernel = kernel / (m - 1)
        # [∂/∂P1, ∂/∂P2] goes straight into the network's backward, which the direct path
        # also takes in the network's dtype (∂/∂Z_i, rounded to it, times W_i): so this
        # m × 2k × 2k product is taken in that dtype too (float32: half the float64 time)
        dtype = p1.dtype
        grad_p = torch.cat([p1c.to(dtype), p2c.to(dtype)], 1) @ kernel.to(dtype)
        k = p1.shape[1]
        grad_v1 = qr1.q_times(a @ (-s[:, None] * (a_t.T @ c11) + b_t.T @ c12.T))
        grad_v2 = qr2.q_times(b @ (-s[:, None] * (b_t.T @ c22) + a_t.T @ c12))
        ctx.save_for_backward(grad_p[:, :k], grad_v1.to(v1.dtype), grad_p[:, k:],
                              grad_v2.to(v2.dtype))
        return corr.to(p1.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        return (*(grad_out * g for g in ctx.saved_tensors), None)


def dcca_loss(f1, f2, *, ridge: float = 1e-3) -> dict:
    """f1, f2: m × d outputs, or `harness.lowrank.LowRank` factors of them (large d)."""
    if isinstance(f1, LowRank) and isinstance(f2, LowRank):
        corr = FactoredTraceNormCorrelation.apply(f1.coords, f1.basis, f2.coords, f2.basis, ridge)
    else:
        corr = TraceNormCorrelation.apply(full(f1), full(f2), ridge)
    return {"loss": -corr, "corr": corr.detach()}


def objective(model, h1, h2, state, params):
    f1, f2 = model.outputs(h1, h2, factored=True)  # factors at large d (harness/lowrank.py)
    return dcca_loss(f1, f2, ridge=params["ridge"])


SPEC = register(MethodSpec(
    name="dcca", presentation=Presentation("Deep CCA"),
    defaults={"ridge": 1e-3}, strength="ridge", grid=(1e-3, 1e-1), valid=(0.0, 1e6),
    search={"ridge": (1e-8, 1.0)},  # 1e-6 was selected at d = 200: widened
    loss_fn=dcca_loss, two_view=TwoView(objective=objective, aligned=False),
))
