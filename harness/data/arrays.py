"""A user's own two views from a file (`--suite arrays --data FILE`).

Format: a NumPy `.npz` holding
- `view1`: (n, p1) numbers, `view2`: (n, p2) numbers — row i of both is one pair;
- `labels` (optional): (n,) integer class of each pair, for cross-modal recognition;
- `split` (optional): (n,) with values 0/1/2 or "train"/"val"/"test". Without it the pairs are
  split 70/15/15 by a fixed permutation (seed 0). Every split needs at least 3 pairs.

Without labels there is no recognition metric at all; labels of one class (or too few test
pairs for its folds) leave recognition "not available" with the reason, the trial ok.

Every problem is one line naming the file, the key and what is wrong (`ArraysError`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.data.mnist_halves import DataError, TwoViews

KEYS = "view1 (n × p1), view2 (n × p2), and optionally labels (n,) and split (n,)"
SPLIT_NAMES = ("train", "val", "test")
MIN_SPLIT = 3  # pairs in every split: fewer have no correlation to measure


class ArraysError(DataError):
    pass


def _numeric(path, key, a, ndim):
    if a.dtype.kind not in "biuf":
        raise ArraysError(f"{path}: {key} has dtype {a.dtype}, not numbers; store it as a "
                          f"float (or integer) array")
    if a.ndim != ndim:
        want = "(n, p)" if ndim == 2 else "(n,)"
        raise ArraysError(f"{path}: {key} has shape {a.shape}, expected {want}")
    bad = ~np.isfinite(a) if a.dtype.kind == "f" else np.zeros(a.shape, bool)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ArraysError(f"{path}: {key} holds {int(bad.sum())} NaN/inf values (the first in "
                          f"row {row}); remove or impute them")


def load_arrays(path) -> dict[str, TwoViews]:
    """The file's train/val/test splits as `TwoViews` (labels None where the file has none)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as arrs:
            data = {k: arrs[k] for k in arrs.files}
    except FileNotFoundError:
        raise ArraysError(f"{path}: no such file; --data takes a .npz holding {KEYS}") from None
    except Exception as err:  # noqa: BLE001 - zip, pickle and format errors: one line
        raise ArraysError(f"{path}: cannot read it as a .npz ({type(err).__name__}); save it "
                          f"with numpy.savez(path, view1=..., view2=...)") from None
    for key in ("view1", "view2"):
        if key not in data:
            raise ArraysError(f"{path}: no array {key!r} (it holds {sorted(data) or 'none'}); "
                              f"an arrays file holds {KEYS}")
        _numeric(path, key, data[key], 2)
    n = len(data["view1"])
    for key in ("view2", "labels", "split"):
        if key in data and len(data[key]) != n:
            raise ArraysError(f"{path}: {key} has {len(data[key])} rows but view1 has {n}; "
                              f"row i of every array is pair i")
    if n < 20:
        raise ArraysError(f"{path}: view1 has {n} rows; at least 20 pairs are needed to split "
                          f"them into train, validation and test")
    labels = None
    if "labels" in data:
        _numeric(path, "labels", data["labels"], 1)
        labels = data["labels"].astype(np.int64)
        if not np.array_equal(labels, data["labels"]):
            raise ArraysError(f"{path}: labels must be whole numbers (class indices)")
    split = _split(path, data.get("split"), n)
    x1, x2 = (np.ascontiguousarray(data[k], dtype=np.float32) for k in ("view1", "view2"))
    out = {}
    for code, name in enumerate(SPLIT_NAMES):
        rows = np.flatnonzero(split == code)
        if not len(rows):
            raise ArraysError(f"{path}: split has no {name!r} rows; every split needs pairs")
        if len(rows) < MIN_SPLIT:
            raise ArraysError(f"{path}: split has {len(rows)} {name!r} rows; every split needs "
                              f"at least {MIN_SPLIT} pairs (a correlation of two is ±1 whatever "
                              f"the data)")
        out[name] = TwoViews(x1[rows], x2[rows], None if labels is None else labels[rows])
    return out


def _split(path, split, n: int) -> np.ndarray:
    if split is None:
        order = np.random.default_rng(0).permutation(n)
        codes = np.empty(n, np.int64)
        cut1, cut2 = int(0.7 * n), int(0.85 * n)
        codes[order[:cut1]], codes[order[cut1:cut2]], codes[order[cut2:]] = 0, 1, 2
        return codes
    if split.ndim != 1:
        raise ArraysError(f"{path}: split has shape {split.shape}, expected (n,)")
    if split.dtype.kind in "US":
        names = {name: code for code, name in enumerate(SPLIT_NAMES)}
        unknown = sorted(set(split.astype(str)) - set(names))
        if unknown:
            raise ArraysError(f"{path}: split holds {unknown[:3]}; use 'train', 'val', 'test'")
        return np.array([names[s] for s in split.astype(str)], np.int64)
    _numeric(path, "split", split, 1)
    if not np.isin(split, (0, 1, 2)).all():
        raise ArraysError(f"{path}: split holds values other than 0, 1, 2 (train, val, test)")
    return split.astype(np.int64)
