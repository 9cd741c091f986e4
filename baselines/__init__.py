"""Baseline objectives, one per file; importing the package registers them all."""
from baselines import cca, dcca, dccae, corrnet, sdcca, softcca  # noqa: F401
