"""Scenes of MNIST digits: the offline stand-in for the COCO saliency experiments.

A scene is a 64×64 canvas split into four 32×32 quadrants (0 top-left, 1 top-right,
2 bottom-left, 3 bottom-right). It holds 2–3 MNIST digits of DISTINCT classes, each in its
own quadrant: the 28×28 digit is pasted at a random offset (row and column each uniform in
0..4) inside its quadrant, so digits never overlap and never leave their quadrant.

Masks: the mask of an object is the tight bounding box of its digit's pixels with value
> MASK_THRESHOLD = 0 (strictly non-zero; the offline MNIST copy has values k/256, so the
faintest stroke pixel, 1/256, counts). Boxes are stored as `boxes[i, c] = (r0, c0, r1, c1)`,
half-open (rows r0..r1-1, columns c0..c1-1) in canvas coordinates, and (-1, -1, -1, -1) for a
class absent from scene i; `Scenes.masks()` expands them to (n, 10, 64, 64) bool.

Digit sources: a scene of split "train" uses MNIST train digits (the 50k of
`mnist_halves.load()["train"]`), "val" the 10k validation digits (the rest of MNIST train),
"test" the MNIST test digits; `source_index[i, c]` is the digit's row in that split, so the
splits' digit sets are disjoint by construction.

Determinism: everything is drawn from `numpy.random.default_rng((seed, split code, 2, 3))`
(the n_digits range is part of the seed), so the same arguments give identical arrays.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.common import cache_root, recipe_hash, save_atomic
from harness.data import mnist_halves

GENERATOR_VERSION = 1  # bump when the generation procedure changes: it is in the cache key
CANVAS = 64
CELL = 32
DIGIT = 28
MAX_JITTER = CELL - DIGIT  # offsets 0..4 inclusive
MASK_THRESHOLD = 0.0
N_CLASSES = 10
SPLITS = ("train", "val", "test")
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
QUADRANT_ORIGIN = ((0, 0), (0, CELL), (CELL, 0), (CELL, CELL))  # (row, col) of each quadrant


def caption(class_id: int) -> str:
    """The text of a class: "the image contains {digit word}"."""
    return f"the image contains {DIGIT_WORDS[int(class_id)]}"


@dataclass
class Scenes:
    images: np.ndarray        # (n, 1, 64, 64) float32 in [0, 1]
    labels: np.ndarray        # (n, 10) float32 multi-hot
    boxes: np.ndarray         # (n, 10, 4) int16 (r0, c0, r1, c1) half-open; -1 when absent
    quadrant: np.ndarray      # (n, 10) int8 quadrant of each class's digit; -1 when absent
    source_index: np.ndarray  # (n, 10) int64 row of the digit in MNIST split `split`; -1 absent
    split: str
    seed: int
    n_digits: tuple[int, int]
    # Optional, set by `harness.data.clutter_scenes` (None here; left out of `arrays()` when None):
    digit_size: np.ndarray | None = None     # (n, 10) int16 side of the resized digit (px); -1 absent
    position: np.ndarray | None = None       # (n, 10, 2) int16 canvas (row, col) of its frame; -1 absent
    contrast: np.ndarray | None = None       # (n, 10) float32 the digit's contrast; 0 absent
    n_distractors: np.ndarray | None = None  # (n,) int8 unlabeled distractors in each scene

    def __len__(self):
        return len(self.images)

    def classes(self, i: int) -> list[int]:
        """The classes present in scene i, ascending."""
        return [int(c) for c in np.flatnonzero(self.labels[i])]

    def mask(self, i: int, c: int) -> np.ndarray:
        """64×64 bool mask (bounding box) of class c in scene i; all False when absent."""
        out = np.zeros((CANVAS, CANVAS), bool)
        r0, c0, r1, c1 = (int(v) for v in self.boxes[i, c])
        if r0 >= 0:
            out[r0:r1, c0:c1] = True
        return out

    def masks(self, index=None) -> np.ndarray:
        """(n, 10, 64, 64) bool masks of the scenes `index` (default all); empty when absent."""
        idx = np.arange(len(self)) if index is None else np.atleast_1d(index)
        rows = np.arange(CANVAS)
        b = self.boxes[idx].astype(np.int64)
        in_rows = (rows >= b[..., 0, None]) & (rows < b[..., 2, None])  # (k, 10, 64)
        in_cols = (rows >= b[..., 1, None]) & (rows < b[..., 3, None])
        return in_rows[..., :, None] & in_cols[..., None, :]

    def objects(self, i: int) -> list[tuple[int, np.ndarray]]:
        """[(class, 64×64 bool mask)] of the digits in scene i."""
        return [(c, self.mask(i, c)) for c in self.classes(i)]

    def arrays(self) -> dict:
        out = {"images": self.images, "labels": self.labels, "boxes": self.boxes,
               "quadrant": self.quadrant, "source_index": self.source_index,
               "split": np.array(self.split), "seed": np.array(self.seed),
               "n_digits": np.array(self.n_digits)}
        out.update({k: getattr(self, k) for k in OPTIONAL_FIELDS if getattr(self, k) is not None})
        return out

    @classmethod
    def from_arrays(cls, arrs) -> "Scenes":
        keys = set(getattr(arrs, "files", arrs))  # an NpzFile or a dict
        return cls(images=arrs["images"], labels=arrs["labels"], boxes=arrs["boxes"],
                   quadrant=arrs["quadrant"], source_index=arrs["source_index"],
                   split=str(arrs["split"]), seed=int(arrs["seed"]),
                   n_digits=tuple(int(v) for v in arrs["n_digits"]),
                   **{k: arrs[k] for k in OPTIONAL_FIELDS if k in keys})


OPTIONAL_FIELDS = ("digit_size", "position", "contrast", "n_distractors")


def digit_images(views: mnist_halves.TwoViews) -> np.ndarray:
    """Full 28×28 digits (float32) rebuilt from the left and right halves."""
    return np.concatenate([views.x1.reshape(-1, DIGIT, DIGIT // 2),
                           views.x2.reshape(-1, DIGIT, DIGIT // 2)], axis=2)


def tight_box(digit: np.ndarray, threshold: float = MASK_THRESHOLD):
    """(r0, c0, r1, c1), half-open, of the pixels > threshold of a 2-D image; None if none."""
    on = digit > threshold
    if not on.any():
        return None
    rows, cols = np.flatnonzero(on.any(1)), np.flatnonzero(on.any(0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _rng(seed: int, split: str, n_digits: tuple[int, int]) -> np.random.Generator:
    return np.random.default_rng((int(seed), SPLITS.index(split), *n_digits))


def make_scenes(n: int, split: str = "train", seed: int = 0, n_digits: tuple[int, int] = (2, 3),
                mnist: dict | None = None) -> Scenes:
    """Generate n scenes from the MNIST digits of `split` (module doc). `mnist`: the output of
    `mnist_halves.load()` when the caller already has it (else it is loaded, offline)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    lo, hi = (int(v) for v in n_digits)
    if not 1 <= lo <= hi <= 4:
        raise ValueError(f"n_digits must satisfy 1 <= lo <= hi <= 4 (one per quadrant), got {n_digits}")
    mnist = mnist if mnist is not None else mnist_halves.load(allow_download=False)
    digits = digit_images(mnist[split])
    by_class = [np.flatnonzero(mnist[split].y == c) for c in range(N_CLASSES)]
    rng = _rng(seed, split, (lo, hi))

    images = np.zeros((n, 1, CANVAS, CANVAS), np.float32)
    labels = np.zeros((n, N_CLASSES), np.float32)
    boxes = np.full((n, N_CLASSES, 4), -1, np.int16)
    quadrant = np.full((n, N_CLASSES), -1, np.int8)
    source = np.full((n, N_CLASSES), -1, np.int64)
    for i in range(n):
        k = int(rng.integers(lo, hi + 1))
        classes = rng.choice(N_CLASSES, size=k, replace=False)
        quads = rng.choice(4, size=k, replace=False)
        for c, q in zip(classes, quads):
            pool = by_class[c]
            src = int(pool[rng.integers(len(pool))])
            dr, dc = (int(v) for v in rng.integers(0, MAX_JITTER + 1, size=2))
            r, col = QUADRANT_ORIGIN[q][0] + dr, QUADRANT_ORIGIN[q][1] + dc
            images[i, 0, r:r + DIGIT, col:col + DIGIT] = digits[src]
            r0, c0, r1, c1 = tight_box(digits[src])  # every MNIST digit has ink
            boxes[i, c] = (r + r0, col + c0, r + r1, col + c1)
            labels[i, c], quadrant[i, c], source[i, c] = 1.0, q, src
    return Scenes(images, labels, boxes, quadrant, source, split, int(seed), (lo, hi))


def cache_key(n: int, split: str, seed: int, n_digits: tuple[int, int],
              mnist_dir: str | None) -> str:
    """Hash of every generation parameter: generator version, n, split, seed, n_digits,
    canvas/quadrant/digit sizes, the mask threshold, and the MNIST source (`mnist_dir`, or
    "default" for `mnist_halves.load`'s own source order)."""
    params = {"version": GENERATOR_VERSION, "n": int(n), "split": split, "seed": int(seed),
              "n_digits": [int(v) for v in n_digits], "canvas": CANVAS, "cell": CELL,
              "digit": DIGIT, "threshold": MASK_THRESHOLD,
              "mnist": str(mnist_dir) if mnist_dir else "default"}
    return recipe_hash(params)


def load_scenes(n: int, split: str = "train", seed: int = 0, n_digits: tuple[int, int] = (2, 3),
                cache_dir: str | os.PathLike | None = None,
                mnist_dir: str | os.PathLike | None = None) -> Scenes:
    """`make_scenes`, cached as an .npz under `cache_dir` (default
    `$MUC2M_CACHE/scenes`, i.e. ~/.cache/muc2m-harness/scenes) named by `cache_key`."""
    mnist_dir = mnist_dir or os.environ.get("MNIST_DIR")
    name = f"scenes-{split}-n{n}-s{seed}-{cache_key(n, split, seed, n_digits, mnist_dir)}"
    return cached_scenes(name, lambda: make_scenes(
        n, split, seed, n_digits, mnist=mnist_halves.load(mnist_dir=mnist_dir,
                                                          allow_download=False)), cache_dir)


def cached_scenes(name: str, build, cache_dir: str | os.PathLike | None = None) -> Scenes:
    """The scenes saved as `{name}.npz` under `cache_dir` (default `$MUC2M_CACHE/scenes`),
    made by `build()` and saved first when absent (every scene generator caches this way)."""
    root = Path(cache_dir) if cache_dir else cache_root() / "scenes"
    path = root / f"{name}.npz"
    if path.is_file():
        with np.load(path) as arrs:
            return Scenes.from_arrays(arrs)
    scenes = build()
    root.mkdir(parents=True, exist_ok=True)
    save_atomic(path, lambda tmp: np.savez_compressed(tmp, **scenes.arrays()))
    return scenes


@dataclass
class Pairs:
    first: np.ndarray         # (m,) int64 scene index
    second: np.ndarray        # (m,) int64 scene index
    shared_class: np.ndarray  # (m,) int64 the one class both contain; -1 for no-common pairs

    def __len__(self):
        return len(self.first)


def make_pairs(scenes, n: int, seed: int = 0, shared: bool = True,
               max_tries: int = 1000) -> Pairs:
    """n distinct unordered pairs of distinct scenes (or images: `scenes` is anything with a
    multi-hot `.labels` (n, K), or that array itself).

    shared=True (Table 3): a class c is drawn uniformly among the classes held by ≥ 2 images,
    then two images containing c that share NO other class; `shared_class` = c. (Scenes have
    ≥ 2 digits, so each then also holds a class of its own, the target of the individual maps.)
    shared=False (Table 4): two images drawn uniformly with no class in common."""
    labels = np.asarray(getattr(scenes, "labels", scenes)) > 0
    with_class = [np.flatnonzero(col) for col in labels.T]
    classes = [c for c, pool in enumerate(with_class) if len(pool) >= 2]
    rng = np.random.default_rng((int(seed), 1 if shared else 0))
    first, second, cls, seen = [], [], [], set()
    tries = 0
    while len(first) < n:
        tries += 1
        if tries > max_tries * max(n, 1) or (shared and not classes):
            raise ValueError(f"could not find {n} distinct {'shared' if shared else 'no-common'} "
                             f"pairs among {len(labels)} images")
        if shared:
            c = classes[int(rng.integers(len(classes)))]
            i, j = (int(v) for v in rng.choice(with_class[c], size=2, replace=False))
            if np.count_nonzero(labels[i] & labels[j]) != 1:
                continue
        else:
            c = -1
            i, j = (int(v) for v in rng.choice(len(labels), size=2, replace=False))
            if np.any(labels[i] & labels[j]):
                continue
        key = (min(i, j), max(i, j))
        if key in seen:
            continue
        seen.add(key)
        first.append(i), second.append(j), cls.append(c)
    return Pairs(np.array(first, np.int64), np.array(second, np.int64), np.array(cls, np.int64))
