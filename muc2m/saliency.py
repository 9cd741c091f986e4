"""Saliency of a MUC2M score: GradCAM for images, input gradients for features.

`model` is anything with `score_tensor(h1, h2, kind, view) -> (N,)` (a fitted `muc2m.model.MUC2M`);
`partner` holds the other view's features (N, p_other), fixed while the explained view varies.
Scores: "cosine" (Eq. 4), "dot", "norm" (own view only) and "individual" (‖P w‖).

- `input_gradient`: ∂s_j/∂h_j for feature inputs h (N, p), by autograd (|·| unless asked
  otherwise). The networks are in eval mode, so row j's score depends on row j only.
- `gradcam`: images x (N, C, H, W) through a frozen `extractor`; captum's `LayerGradCam` on
  `layer` (default: the extractor's last Conv2d), upsampled to (H, W) with captum's
  `LayerAttribution.interpolate` (bilinear), then ReLU. Returns (N, H, W).
Everything runs on the inputs' device.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

import torch
from torch import nn


def score_function(model, partner: torch.Tensor, *, view: int = 1,
                   score: str = "cosine") -> Callable[[torch.Tensor], torch.Tensor]:
    """h_view ↦ s(h_view, partner), (N, p_view) → (N,)."""
    partner = partner.detach()
    if view == 1:
        return lambda h: model.score_tensor(h, partner.to(h.device), score, view=view)
    return lambda h: model.score_tensor(partner.to(h.device), h, score, view=view)


def input_gradient(model, h: torch.Tensor, partner: torch.Tensor, *, view: int = 1,
                   score: str = "cosine", absolute: bool = True) -> torch.Tensor:
    """∂s(h_j, partner_j)/∂h_j, (N, p); its absolute value when `absolute`."""
    f = score_function(model, partner, view=view, score=score)
    with torch.enable_grad():
        h = h.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(f(h).sum(), h)
    return grad.abs() if absolute else grad


def last_conv(extractor: nn.Module) -> nn.Module:
    convs = [m for m in extractor.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("the extractor has no Conv2d layer; name the GradCAM layer explicitly")
    return convs[-1]


@contextmanager
def _eval_mode(module: nn.Module):
    """Frozen extractor: eval mode (BN running statistics) while explaining, then restored."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def gradcam(model, extractor: nn.Module, x: torch.Tensor, partner: torch.Tensor, *,
            view: int = 1, score: str = "cosine", layer: nn.Module | str | None = None
            ) -> torch.Tensor:
    """GradCAM maps of the score at input resolution, (N, H, W), ≥ 0."""
    # Imported here: captum brings matplotlib (~1.5 s), which every process that loads the
    # suites (each Ray worker of a two-view sweep, each CLI) would otherwise pay for nothing.
    from captum.attr import LayerAttribution, LayerGradCam

    if isinstance(layer, str):
        layer = extractor.get_submodule(layer)
    layer = last_conv(extractor) if layer is None else layer
    f = score_function(model, partner, view=view, score=score)
    with _eval_mode(extractor), torch.enable_grad():
        cam = LayerGradCam(lambda images: f(extractor(images)), layer).attribute(x.detach())
    cam = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    return cam.clamp_min(0).sum(1).detach()  # GradCAM returns one channel; sum drops it


def saliency(model, x: torch.Tensor, partner: torch.Tensor, *, view: int = 1,
             score: str = "cosine", extractor: nn.Module | None = None,
             layer: nn.Module | str | None = None, absolute: bool = True) -> torch.Tensor:
    """GradCAM maps (N, H, W) when an image `extractor` is given, else input gradients (N, p)."""
    if extractor is None:
        return input_gradient(model, x, partner, view=view, score=score, absolute=absolute)
    return gradcam(model, extractor, x, partner, view=view, score=score, layer=layer)
