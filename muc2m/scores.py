"""Scores of a pair's representations: `cosine` is the paper's Eq. 4."""
from __future__ import annotations

import torch

from harness.lowrank import LowRank, row_inner


def cosine_score(z1, z2, eps: float = 1e-8) -> torch.Tensor:
    """s_c = ⟨z1/‖z1‖, z2/‖z2‖⟩ per row (Eq. 4); z1, z2 tensors, or `harness.lowrank.LowRank`
    factors of m × d batches (the row inner products then cost k², not d)."""
    if isinstance(z1, LowRank):  # √ of the clamped square: the same value, no 1/√0 gradient
        norms = (row_inner(z1, z1).clamp_min(eps**2).sqrt()
                 * row_inner(z2, z2).clamp_min(eps**2).sqrt())
        return row_inner(z1, z2) / norms
    return (z1 * z2).sum(-1) / (z1.norm(dim=-1).clamp_min(eps) * z2.norm(dim=-1).clamp_min(eps))


def dot_score(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    return (z1 * z2).sum(-1)


def norm_score(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """‖z1‖ (own view only)."""
    return z1.norm(dim=-1)


COMMON_SCORES = {"cosine": cosine_score, "dot": dot_score, "norm": norm_score}
