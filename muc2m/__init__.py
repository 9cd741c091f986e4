"""MUC2M (Shi & Niethammer 2023): common component, contractive regularization, scores."""
from muc2m import common  # noqa: F401  (registers `muc2m`)
