"""Linear CCA (Hotelling 1936): closed form, no training (docs/methods.md, CCA).

Σ11 = H̄1ᵀH̄1/(n−1) + rI, Σ22 likewise, T = Σ11^{-1/2} Σ12 Σ22^{-1/2} = U D Vᵀ,
A = Σ11^{-1/2} U[:, :d], B = Σ22^{-1/2} V[:, :d]. At most rank(H̄1), rank(H̄2) components exist.
"""
from __future__ import annotations

import torch

from harness.linalg import LinearCCA
from harness.registry import MethodSpec, Presentation, TwoView, register


def fit_linear_cca(h1: torch.Tensor, h2: torch.Tensor, d: int, params: dict):
    """Fit on the training views; return the map (h1, h2) -> projected views (n × k, k ≤ d)."""
    cca = LinearCCA.fit(h1, h2, k=d, ridge=params["ridge"])

    def represent(x1, x2):
        z1, z2 = cca.transform(x1, x2)
        return z1.float(), z2.float()

    represent.n_components = cca.proj1.shape[1]
    return represent


SPEC = register(MethodSpec(
    name="cca", presentation=Presentation("CCA"),
    defaults={"ridge": 1e-3}, strength="ridge", grid=(1e-3, 1e-1), valid=(1e-12, 1e6),
    search={"ridge": (1e-6, 10.0)},
    two_view=TwoView(closed_form=fit_linear_cca),
))
