"""MUC2M individual component (paper Eq. 5–6), trained after the common one is frozen.

Shapes: a batch of `m` pairs, `h_i` (m, p_i) input features, `z_i` (m, d) common and `w_i`
(m, d) individual representations.

    W_i = BN(g_i(H_i)),   ĥ_i = dec_i([z_i ; w_i])
    L_ind,i = (1/m) Σ_j ‖h_i,j − ĥ_i,j‖² + λ_ind Σ_{k,l} ((W_iᵀ Z_i / m)_kl)²

Individual score (our reading): Q_j an orthonormal basis of span(z1_j, z2_j), P_j = I − Q_j Q_jᵀ,
s_ind(x_i,j) = ‖P_j u_i,j‖₂, where u is the representation the score reads (`SCORE_SPACES`):
- "bn" (the paper's reading): u = W = BN(g(H)), affine-free. Every coordinate has
  unit variance over the data, so ‖P u‖ is nearly the same for every input (~√(d−2)): its
  spread over the test items is measured and reported (`ind_score_cv`).
- "pre_bn": u = g(H), the representation before the BatchNorm (our reading where the paper is
  silent): the loss still constrains BN(g(H)), which differs from g(H) by a fixed per-coordinate
  affine map at test time, but the score keeps g's own magnitudes, which vary with the input.
- "affine_bn": u = W with an affine BatchNorm (learned per-coordinate scale and shift).
The variant is chosen on validation (README, "Saliency results").

Gradient regularization of the individual score (paper Sec. 3.3, "the same applies for the
individual component"): L_ind + γ_ind · (1/m) Σ_j [R(∂s_ind,1(j)/∂h1_j) + R(∂s_ind,2(j)/∂h2_j)],
R the elastic net of Eq. 7 (`individual_gradient_penalty`).
"""
from __future__ import annotations

import torch
from torch import nn

from harness.models import HIDDEN, decoder, encoder
from muc2m.regularization import gradient_penalty, score_input_gradients

# λ_ind: the paper gives no value (our choice, measured). On the planted problem of the tests
# with linear encoders (20 + 20 epochs, seed 0), λ_ind = 1 left the individual representation
# correlated with the common one (held-out |corr| up to 0.47); λ_ind = 10 brought it to 0.05.
LAM_IND = 10.0
SCORE_SPACES = ("bn", "pre_bn", "affine_bn")


class IndividualComponent(nn.Module):
    """g_i (the common encoder's MLP shape) + BN(d), and dec_i : R^{2d} → R^{p_i}.

    `score_space` (module doc): which representation the individual score reads; "affine_bn"
    also makes the BatchNorm affine, the others keep it affine-free."""

    def __init__(self, p1: int, p2: int, d: int, hidden=HIDDEN, score_space: str = "bn"):
        super().__init__()
        if score_space not in SCORE_SPACES:
            raise ValueError(f"unknown individual score space {score_space!r}; choose one of: "
                             f"{', '.join(SCORE_SPACES)}")
        self.score_space = score_space
        affine = score_space == "affine_bn"
        self.enc1, self.enc2 = encoder(p1, d, hidden), encoder(p2, d, hidden)
        self.bn1 = nn.BatchNorm1d(d, affine=affine)
        self.bn2 = nn.BatchNorm1d(d, affine=affine)
        self.dec1, self.dec2 = decoder(2 * d, p1, hidden), decoder(2 * d, p2, hidden)

    def represent(self, h1: torch.Tensor, h2: torch.Tensor):
        """(w1, w2), each (m, d): W_i = BN(g_i(H_i))."""
        return self.bn1(self.enc1(h1)), self.bn2(self.enc2(h2))

    def score_representation(self, h: torch.Tensor, view: int) -> torch.Tensor:
        """u_view (m, d), what the individual score reads: g(h) for "pre_bn", else BN(g(h))."""
        enc, bn = (self.enc1, self.bn1) if view == 1 else (self.enc2, self.bn2)
        u = enc(h)
        return u if self.score_space == "pre_bn" else bn(u)

    def reconstruct(self, view: int, z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """ĥ_view = dec_view([z ; w]), (m, p_view)."""
        dec = self.dec1 if view == 1 else self.dec2
        return dec(torch.cat([z, w], dim=1))


def individual_loss(h: torch.Tensor, h_hat: torch.Tensor, w: torch.Tensor, z: torch.Tensor,
                    *, lam_ind: float = LAM_IND) -> dict:
    """L_ind,i of one view (Eq. 6). `z` comes from the frozen common component and is detached
    here, so only the individual encoder and decoder receive gradients."""
    m = h.shape[0]
    reconstruction = (h - h_hat).pow(2).sum(1).mean()
    cross = w.T @ z.detach() / m  # (d, d) sample correlations when both are batch-standardised
    cross_correlation = cross.pow(2).sum()
    return {"loss": reconstruction + lam_ind * cross_correlation,
            "reconstruction": reconstruction.detach(),
            "cross_correlation": cross_correlation.detach(),
            "max_abs_cross": cross.detach().abs().max()}


def common_basis(z1: torch.Tensor, z2: torch.Tensor, rtol: float = 1e-6) -> torch.Tensor:
    """Q (m, d, 2): per pair an orthonormal basis of span(z1_j, z2_j) by batched QR.

    Where z2_j is (numerically) parallel to z1_j, or a vector is zero, the span has rank < 2;
    QR still returns two orthonormal columns, so the spurious column(s) are zeroed
    (|R_kk| ≤ rtol · ‖[z1_j, z2_j]‖) to keep Q Qᵀ the projector onto the span itself.
    """
    a = torch.stack([z1, z2], dim=-1)
    q, r = torch.linalg.qr(a)
    scale = a.flatten(1).norm(dim=1).clamp_min(torch.finfo(a.dtype).tiny)
    keep = torch.diagonal(r, dim1=-2, dim2=-1).abs() > rtol * scale[:, None]
    return q * keep[:, None, :].to(q.dtype)


def individual_score(w: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor, *,
                     detach_basis: bool = True) -> torch.Tensor:
    """s_ind = ‖P_j w_j‖₂ per row, (m,), with P_j = I − Q_j Q_jᵀ.

    With `detach_basis` (default) the projector is held constant when differentiating, as in the
    paper's Proposition 7.2 (gradient V_1 P_jᵀ P_j w_j / ‖P_j w_j‖ in the linear case); this also
    avoids QR's ill-conditioned backward when z1_j and z2_j are nearly parallel.
    """
    q = common_basis(z1.detach(), z2.detach()) if detach_basis else common_basis(z1, z2)
    residual = w - (q @ (q.transpose(1, 2) @ w.unsqueeze(-1))).squeeze(-1)
    return residual.norm(dim=1)


def individual_gradient_penalty(component: IndividualComponent, h1: torch.Tensor,
                                h2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor, *,
                                alpha: float = 0.5) -> torch.Tensor:
    """(1/m) Σ_j [R(∂s_ind,1(j)/∂h1_j) + R(∂s_ind,2(j)/∂h2_j)], differentiable (double backward).

    `h1`, `h2` must require gradients; z1, z2 come from the frozen common component. The score's
    projector is held constant (as in `individual_score` and Proposition 7.2), so s_ind,i depends
    on h_i through u_i only, and one backward of s_ind,1 + s_ind,2 gives both input gradients."""
    s = (individual_score(component.score_representation(h1, 1), z1, z2)
         + individual_score(component.score_representation(h2, 2), z1, z2))
    return gradient_penalty(score_input_gradients(s, (h1, h2)), alpha=alpha)
