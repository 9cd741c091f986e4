"""DCCA-EY (Chapman, Aguila & Wells): the unconstrained Eckhart–Young loss of CCA.

With the batch covariances of the centred outputs f_i(H_i) (normalised by m−1),
A = Σ12 + Σ21 and B = Σ11 + Σ22,

    loss = −2 tr(A) + tr(B B′),

the Eckhart–Young form of the generalised eigenproblem A u = ρ B u of CCA: no whitening, no
decomposition, so it is a plain float32 loss on mini-batches. Its minimiser spans the top-d
canonical subspace (each direction scaled so that its B-variance is ρ_k, minimum −Σ_k ρ_k²),
but only up to a rotation shared by both views, hence `aligned=False`.

Unbiased form (ours): the batch is split into its two halves; B and B′ are B of each half (each
half centred on its own mean, /(m_half − 1)), independent estimates, so tr(B B′) is an unbiased
estimate of tr(B_pop²); A is from the whole batch. (B′ = B of the same batch would bias the
penalty upward by the estimator's variance.)

cca-zoo's `DCCAEY` (4.0.1) writes the same loss for the shifted problem (A+B) u = (1+ρ) B u:
with C = (A+B)/2 and V = B/2 it minimises −2 tr(C) + tr(V V′) = −tr(A) − tr(B) + ¼ tr(B B′).
On outputs scaled by √2 that is −2 tr(A) − 2 tr(B) + tr(B B′), i.e. ours minus 2 tr(B): the
same canonical subspace, eigenvalues 1+ρ_k instead of ρ_k (tests/test_modern_objectives.py).
"""
from __future__ import annotations

import torch

from harness.lowrank import centered, diag_gram, inner_of_gram_sums
from harness.registry import MethodSpec, Presentation, TwoView, register


def penalty(a1, a2, b1, b2) -> torch.Tensor:
    """tr(B B′) = ⟨B, B′⟩ (B′ symmetric), B = Σ11 + Σ22 of the batch (a1, a2) and B′ of
    (b1, b2), without forming either d × d matrix when the batches are factored."""
    scale = (a1.shape[0] - 1) * (b1.shape[0] - 1)
    return inner_of_gram_sums([centered(a1), centered(a2)], [centered(b1), centered(b2)]) / scale


def dcca_ey_loss(f1, f2) -> dict:
    """f1, f2: m × d outputs (m ≥ 4), tensors or `harness.lowrank.LowRank` factors of them
    (large d). Returns the loss, the reward 2 tr(A) and the penalty tr(B B′) (both detached)."""
    m, half = f1.shape[0], f1.shape[0] // 2
    # 2 tr(Σ12 + Σ21) = 4 tr(Σ12), summed elementwise: no d × d product, and torch.trace's
    # backward reads its gradient on the host (a sync per step)
    reward = 4 * diag_gram(centered(f1), centered(f2)).sum() / (m - 1)
    tr_bb = penalty(f1[:half], f2[:half], f1[half:], f2[half:])  # tr(B B′)
    return {"loss": -reward + tr_bb, "reward": reward.detach(), "penalty": tr_bb.detach()}


def objective(model, h1, h2, state, params):
    f1, f2 = model.outputs(h1, h2, factored=True)  # factors at large d (harness/lowrank.py)
    return dcca_ey_loss(f1, f2)


# No parameters and no strength: the learning rate is what matters, so it is what the search
# samples (the same range as SDCCA's), and the method gets the same search budget as every
# other. `loss_fn` stays None like sdcca's, as there are no keyword defaults to compare.
SPEC = register(MethodSpec(
    name="dcca_ey", presentation=Presentation("DCCA-EY"), defaults={}, strength=None, grid=(),
    search={"lr": (1e-4, 1e-2)}, two_view=TwoView(objective=objective, aligned=False),
))
