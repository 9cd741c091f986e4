"""Baseline objectives, one per file; importing the package registers them all."""
# The paper's row order is the registry's order, so the imports are not sorted.
from baselines import cca, dcca, dccae, corrnet, sdcca, softcca  # noqa: F401, I001
