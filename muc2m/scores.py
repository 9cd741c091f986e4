"""Scores of a pair's representations (SPEC §2.1): `cosine` is the paper's Eq. 4."""
from __future__ import annotations

import torch


def cosine_score(z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """s_c = ⟨z1/‖z1‖, z2/‖z2‖⟩ per row (Eq. 4)."""
    return (z1 * z2).sum(-1) / (z1.norm(dim=-1).clamp_min(eps) * z2.norm(dim=-1).clamp_min(eps))


def dot_score(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    return (z1 * z2).sum(-1)


def norm_score(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """‖z1‖ (own view only)."""
    return z1.norm(dim=-1)


COMMON_SCORES = {"cosine": cosine_score, "dot": dot_score, "norm": norm_score}
