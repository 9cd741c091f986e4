"""The "base" rows of Table 3: scores of one frozen extractor's raw features, no training.

Both images of a pair go through the same extractor (A for `base_a`, B for `base_b`):
common score = cosine of the two feature vectors, individual score = the norm of the feature
component orthogonal to the partner's, ‖h_own − (h_own·ĥ_p) ĥ_p‖.
"""
from __future__ import annotations

from torch import nn

from harness.registry import MethodSpec, Presentation, Saliency, register
from muc2m.scores import COMMON_SCORES


class FeatureScores(nn.Module):
    def score_tensor(self, h1, h2, kind="cosine", view=1):
        own, other = (h1, h2) if view == 1 else (h2, h1)
        if kind in COMMON_SCORES:
            return COMMON_SCORES[kind](own, other)
        unit = nn.functional.normalize(other, dim=-1)
        return (own - (own * unit).sum(-1, keepdim=True) * unit).norm(dim=-1)


def feature_scores(cfg, train, device, checkpoint_dir, log, individual):
    return FeatureScores().to(device), []


BASE_A = register(MethodSpec(  # raw features of extractor A for both images
    name="base_a", presentation=Presentation("base A"), defaults={}, strength=None,
    saliency=Saliency(score_model=feature_scores, experiments=("pairs",),
                      feature_views=("A", "A"))))
BASE_B = register(MethodSpec(  # raw features of extractor B for both images
    name="base_b", presentation=Presentation("base B"), defaults={}, strength=None,
    saliency=Saliency(score_model=feature_scores, experiments=("pairs",),
                      feature_views=("B", "B"))))
