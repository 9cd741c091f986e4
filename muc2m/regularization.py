"""Contractive gradient regularization of the common score (paper Eq. 7).

R(g) = α‖g‖₁ + (1−α)‖g‖₂², applied to ∂s_c(j)/∂h_i,j and averaged over the batch. The input
gradients are taken with `create_graph=True`, so the penalty is differentiated twice
(double backpropagation).
"""
from __future__ import annotations

import torch


def elastic_net(g: torch.Tensor, alpha: float) -> torch.Tensor:
    """Per-row α‖g‖₁ + (1−α)‖g‖₂²."""
    return alpha * g.abs().sum(1) + (1 - alpha) * g.pow(2).sum(1)


def score_input_gradients(score: torch.Tensor, inputs: tuple[torch.Tensor, ...]):
    """∂(Σ_j s_j)/∂h_i for each input, differentiable (double backprop).

    With batch-norm in training mode, row j's gradient also carries O(1/m) terms from the other
    rows through the batch statistics; summing the scores keeps one backward pass per batch.
    """
    return torch.autograd.grad(score.sum(), inputs, create_graph=True)


def gradient_penalty(grads, *, alpha: float = 0.5) -> torch.Tensor:
    """(1/m) Σ_j Σ_i R(g_i,j)."""
    return sum(elastic_net(g.flatten(1), alpha).mean() for g in grads)
