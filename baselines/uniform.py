"""Uniform saliency (paper Tables 2–3, "uniform"): the same map everywhere, no model.

Its precision against a mask is the mask's area fraction: the chance level every learned map
must beat. A registry entry so that the saliency suites never branch on its name.
"""
from __future__ import annotations

from harness.registry import MethodSpec, Presentation, Saliency, register


def no_model(cfg, train, device, checkpoint_dir, log, individual):
    return None, []


SPEC = register(MethodSpec(  # constant map: precision = the mask's area fraction
    name="uniform", presentation=Presentation("uniform"), defaults={}, strength=None,
    saliency=Saliency(score_model=no_model, constant_maps=True),
))
