"""Baseline methods, one per file; importing the package registers them all.

The paper's row order is the registry's order (and the tables'), so the imports are not sorted:
the two-view objectives of Tables 1 and 5, then the saliency baselines of Tables 2–4.
"""
from baselines import cca, dcca, dccae, corrnet, sdcca, softcca, dcca_ey, barlow_twins, vicreg  # noqa: F401, I001
from baselines import uniform, contrastive, feature_scores  # noqa: F401, I001
