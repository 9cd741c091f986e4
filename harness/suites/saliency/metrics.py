"""Saliency metrics of Tables 2–4 (docs/methods.md, Saliency), on numpy arrays or torch tensors.

Conventions shared by every function:
- A saliency map `S` is non-negative (GradCAM after ReLU) at image resolution, shape H×W; a
  mask `M` is binary (bool or 0/1) of the same H×W.
- Functions accept a batch: any leading axes `(..., H, W)`; the sums run over the last two
  axes only, so `f(batch)[k] == f(batch[k])`. A single H×W input returns a Python float, a
  batch returns a float64 numpy array of the leading shape.
- All-zero map (the map carries no preference, e.g. GradCAM whose ReLU clipped everything):
  precision is the value the UNIFORM map gets, i.e. the mask's area fraction. This is the
  limit of `precision(S + ε·1, M)` as ε → 0 for S = 0, keeps AP defined for every
  (image, object), and neither rewards nor drops a failed map (dropping NaNs would bias AP
  upward; scoring 0 would penalise it below chance).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def _np(x, dtype=np.float64) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _map(saliency) -> np.ndarray:
    s = _np(saliency)
    if s.ndim < 2:
        raise ValueError(f"a saliency map needs shape (..., H, W), got {s.shape}")
    if np.any(s < 0):
        raise ValueError("saliency maps must be non-negative (apply the ReLU first)")
    return s


def _mask(mask) -> np.ndarray:
    m = _np(mask)
    if m.ndim < 2:
        raise ValueError(f"a mask needs shape (..., H, W), got {m.shape}")
    if not np.all((m == 0) | (m == 1)):
        raise ValueError("masks must be binary (bool or 0/1)")
    return m


def _out(value: np.ndarray):
    return float(value) if np.ndim(value) == 0 else value


def _sum2(x: np.ndarray) -> np.ndarray:
    return x.sum(axis=(-2, -1))


def uniform_precision(mask):
    """Precision of the uniform map, i.e. the mask's area fraction: `Σ M / (H·W)`."""
    m = _mask(mask)
    return _out(m.mean(axis=(-2, -1)))


def precision(saliency, mask):
    """Precision of a saliency map against an object mask: `Σ S·M / Σ S`.

    All-zero map (`Σ S = 0`): the uniform map's value `Σ M / (H·W)` (module doc)."""
    s, m = _map(saliency), _mask(mask)
    s, m = np.broadcast_arrays(s, m)
    total = _sum2(s)
    inside = _sum2(s * m)
    area = m.mean(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(total > 0, inside / np.where(total > 0, total, 1.0), area)
    return _out(value)


def average_precision(maps, masks) -> float:
    """AP = mean over all (image, object) maps of `precision(S_k, M_k)`.

    `maps`, `masks`: two arrays (N, H, W), or two equal-length sequences of H_k×W_k arrays
    (images of different sizes, as in COCO)."""
    if len(maps) != len(masks):
        raise ValueError(f"{len(maps)} maps but {len(masks)} masks")
    if len(maps) == 0:
        raise ValueError("average_precision of an empty set of maps")
    if isinstance(maps, Sequence) or isinstance(masks, Sequence):
        values = [precision(s, m) for s, m in zip(maps, masks)]
    else:
        values = np.ravel(precision(maps, masks))
    return float(np.mean(values))


def precision_without_background(saliency, mask_ind, mask_common):
    """AP_ind−bg of Table 3: `Σ S·M_ind / Σ S·(M_ind ∪ M_common)` — the precision of an
    individual-score map once everything outside the objects (the background) is removed.

    When the map puts no mass on the objects (`Σ S·(M_ind ∪ M_common) = 0`) the value is the
    uniform map's, `|M_ind| / |M_ind ∪ M_common|` (same convention as `precision`); when both
    masks are empty the quantity is undefined and the value is NaN."""
    s, mi, mc = _map(saliency), _mask(mask_ind), _mask(mask_common)
    s, mi, mc = np.broadcast_arrays(s, mi, mc)
    union = np.maximum(mi, mc)
    on_objects = _sum2(s * union)
    inside = _sum2(s * mi)
    with np.errstate(invalid="ignore", divide="ignore"):
        uniform = _sum2(mi) / _sum2(union)  # NaN for an empty union
        value = np.where(on_objects > 0, inside / np.where(on_objects > 0, on_objects, 1.0),
                         uniform)
    return _out(value)


def saliency_magnitude(saliency):
    """Table 4: `100 · mean(S / max S)` — the map normalised to maximum 1, then 100 × its mean
    pixel value (a constant map gives 100, a one-hot map 100/(H·W)). An all-zero map gives 0."""
    s = _map(saliency)
    peak = s.max(axis=(-2, -1), keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        normed = np.where(peak > 0, s / np.where(peak > 0, peak, 1.0), 0.0)
    return _out(100.0 * normed.mean(axis=(-2, -1)))
