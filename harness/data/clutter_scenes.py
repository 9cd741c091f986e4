"""Cluttered scenes of MNIST digits: a harder, COCO-like stand-in for the saliency experiments.

Why: the quadrant scenes of `harness.data.scenes` (one digit per quadrant on a black canvas)
are too easy. A globally pooled CNN feature of such a scene is nearly a bag of digit
detectors, so the raw features already localise every digit and the methods cannot be told
apart. COCO images differ in four ways that matter for saliency, and this generator adds each:
clutter (a textured background), scale (objects of different sizes), overlap (objects touch
and occlude each other) and distractors (salient structure that is no labelled object).
The design and the generator below were fixed before any method's test numbers on these
scenes were looked at.

A scene is a 64×64 canvas, float32 in [0, 1], the pixel-wise max of three layers:

- Background (every pixel): a low-frequency random field (two octaves: uniform noise on a
  6×6 and a 12×12 grid, each upsampled to 64×64 by separable bicubic interpolation, mixed with
  a random weight in [0.3, 0.9] and min–max normalised) blended with a sinusoidal grating of
  random orientation (0..π), period (6..20 px) and phase (grating weight in [0.2, 0.8]), mapped
  to a random intensity range [lo, hi] with hi ~ U(0.15, 0.5) and lo ~ U(0, 0.4)·hi, plus
  pixel noise N(0, 0.02²); clipped to [0, 1]. Background values thus reach up to half of a
  digit's full ink.
- Objects: 2–4 (`n_digits`) MNIST digits of DISTINCT classes from the split's own digits.
  Each is resized to a random side of 17..36 px (scale 0.6–1.3 of 28 px; `digit_size`, so
  scale = digit_size / 28) with `torch.nn.functional.interpolate` (bilinear, antialias,
  align_corners=False; `resize_digit`), multiplied by a random contrast in [0.7, 1.0] and
  placed with its whole digit_size × digit_size frame at a uniformly random position inside
  the canvas (`position` = canvas (row, col) of the frame's top-left). Objects may touch and
  overlap, but boundedly: a placement whose ink box intersects an already placed box in more
  than MAX_OVERLAP = 35% of either box's area is rejected and redrawn (20 positions per size,
  then a new size, 10 sizes; then the scene's placement restarts). Composited by max.
- Distractors: 1–3 per scene, carrying no label and no mask, at digit-like intensity
  (contrast 0.6–1.0): with probability 1/2 a crop (8..14 px square, centred on an ink pixel)
  of a random digit of the same split, rotated by a multiple of 90° and possibly mirrored;
  else (1/4 each) an anti-aliased line segment (length 10..30 px) or circular arc (radius
  5..14 px, span 60..270°), 1.0..2.2 px wide. A distractor with more than half of its ink
  inside the objects' boxes is redrawn (up to 10 times, then kept) so that most of the
  clutter lies where no object is. Composited by max.

Masks: exact, computed at generation time. The box of an object is the tight bounding box
of the resized digit's pixels > MASK_REL_THRESHOLD = 0.05 × that resized digit's own maximum
(before contrast; the faint antialiasing fringe below it is left out), shifted to its position
(inside the canvas by construction). Boxes are stored as in `harness.data.scenes`:
`boxes[i, c] = (r0, c0, r1, c1)` half-open in canvas coordinates, (-1, -1, -1, -1) when class
c is absent, so `Scenes.mask()`, `masks()` and `make_pairs()` work unchanged.

Stored in the returned `harness.data.scenes.Scenes`: `quadrant` is 0 for a present class and
-1 for an absent one (there are no quadrants here); `source_index[i, c]` is the digit's row in
the MNIST split `split` (train/val/test digit sets disjoint, as in scenes.py; distractor
crops come from the same split); the optional fields `digit_size` (n, 10) int16 and
`position` (n, 10, 2) int16 (-1 when absent), `contrast` (n, 10) float32 (0 when absent) and
`n_distractors` (n,) int8.

Determinism: scene i is drawn from its own `numpy.random.default_rng` child of
`SeedSequence([STREAM_TAG, seed, split code, lo, hi])`, so the same arguments give identical
arrays, and the first m of n scenes are the scenes of n = m.
"""
from __future__ import annotations

import math
import os
from functools import lru_cache

import numpy as np
import torch
from torch.nn import functional as F

from harness.common import recipe_hash
from harness.data import mnist_halves
from harness.data.scenes import (CANVAS, DIGIT, N_CLASSES, SPLITS, Scenes, cached_scenes,
                                 digit_images, tight_box)

GENERATOR_VERSION = 1  # bump when the generation procedure changes: it is in the cache key
STREAM_TAG = 0xC1  # separates these random streams from every other generator's
MAX_DIGITS = 4
# objects
SIZE_RANGE = (17, 36)            # resized digit side in px, inclusive: scale 0.6–1.3 of 28
CONTRAST_RANGE = (0.7, 1.0)
MAX_OVERLAP = 0.35               # max intersection / area of either box
MASK_REL_THRESHOLD = 0.05        # box = pixels > this × the resized digit's max
POSITION_TRIES, SIZE_TRIES, PLACEMENT_RESTARTS = 20, 10, 100
# background
NOISE_GRIDS = (6, 12)
NOISE_MIX = (0.3, 0.9)           # weight of the coarse octave
GRATING_PERIOD = (6.0, 20.0)     # px
GRATING_MIX = (0.2, 0.8)         # weight of the grating against the noise field
BG_HI = (0.15, 0.5)
BG_LO_FRACTION = (0.0, 0.4)      # lo = this × hi
PIXEL_NOISE = 0.02
# distractors
N_DISTRACTORS = (1, 3)
DISTRACTOR_KINDS = ("crop", "line", "arc")
DISTRACTOR_P = (0.5, 0.25, 0.25)
DISTRACTOR_CONTRAST = (0.6, 1.0)
CROP_RANGE = (8, 14)             # crop side in px, inclusive
LINE_LENGTH = (10.0, 30.0)
ARC_RADIUS = (5.0, 14.0)
ARC_SPAN = (math.pi / 3, 1.5 * math.pi)
STROKE_WIDTH = (1.0, 2.2)
MAX_DISTRACTOR_IN_BOXES = 0.5    # max fraction of a distractor's ink inside object boxes
DISTRACTOR_TRIES = 10

_ROWS, _COLS = np.mgrid[0:CANVAS, 0:CANVAS].astype(np.float64)


def resize_digit(digit: np.ndarray, size: int) -> np.ndarray:
    """A 2-D digit resized to size × size (bilinear, antialias, align_corners=False), float32."""
    x = torch.from_numpy(np.ascontiguousarray(digit, dtype=np.float32))[None, None]
    out = F.interpolate(x, size=(int(size), int(size)), mode="bilinear", align_corners=False,
                        antialias=True)
    return out[0, 0].clamp_(0.0, 1.0).numpy()


def digit_box(resized: np.ndarray):
    """Tight box (r0, c0, r1, c1), half-open, of a resized digit's pixels
    > MASK_REL_THRESHOLD × its maximum, in the digit's own frame."""
    return tight_box(resized, MASK_REL_THRESHOLD * float(resized.max()))


def overlap_ok(a, b, max_overlap: float | None = None) -> bool:
    """Whether boxes a and b intersect in at most `max_overlap` of EITHER box's area."""
    limit = MAX_OVERLAP if max_overlap is None else max_overlap
    h = min(a[2], b[2]) - max(a[0], b[0])
    w = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(h, 0) * max(w, 0)
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    return inter <= limit * min(area_a, area_b)


@lru_cache(maxsize=None)
def _upsample_matrix(grid: int) -> np.ndarray:
    """(CANVAS, grid) 1-D bicubic interpolation weights (torch's, align_corners=False)."""
    basis = torch.eye(grid, dtype=torch.float64).reshape(grid, 1, grid, 1)
    up = F.interpolate(basis, size=(CANVAS, 1), mode="bicubic", align_corners=False)
    return up[:, 0, :, 0].T.numpy()


def _check(n, split, seed, n_digits) -> tuple[int, int]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    try:
        lo, hi = (int(v) for v in n_digits)
    except (TypeError, ValueError):
        raise ValueError(f"n_digits must be a pair (lo, hi), got {n_digits!r}") from None
    if not 1 <= lo <= hi <= MAX_DIGITS:
        raise ValueError(f"n_digits must satisfy 1 <= lo <= hi <= {MAX_DIGITS}, got {n_digits!r}")
    return lo, hi


def _background(rng: np.random.Generator) -> np.ndarray:
    """One 64×64 textured background (module doc), float64."""
    coarse = rng.random((NOISE_GRIDS[0], NOISE_GRIDS[0]))
    fine = rng.random((NOISE_GRIDS[1], NOISE_GRIDS[1]))
    mix = rng.uniform(*NOISE_MIX)
    uc, uf = _upsample_matrix(NOISE_GRIDS[0]), _upsample_matrix(NOISE_GRIDS[1])
    field = mix * (uc @ coarse @ uc.T) + (1 - mix) * (uf @ fine @ uf.T)
    field = (field - field.min()) / max(field.max() - field.min(), 1e-12)
    theta, period, phase = rng.uniform(0, math.pi), rng.uniform(*GRATING_PERIOD), rng.uniform(0, 2 * math.pi)
    grating = 0.5 + 0.5 * np.sin(2 * math.pi * (_COLS * math.cos(theta) + _ROWS * math.sin(theta))
                                 / period + phase)
    g = rng.uniform(*GRATING_MIX)
    hi = rng.uniform(*BG_HI)
    lo = rng.uniform(*BG_LO_FRACTION) * hi
    texture = (1 - g) * field + g * grating
    noise = rng.normal(0.0, PIXEL_NOISE, size=(CANVAS, CANVAS))
    return np.clip(lo + (hi - lo) * texture + noise, 0.0, 1.0)


def _place(rng, digit: np.ndarray, boxes: list):
    """(size, row, col, canvas box, resized digit) of one object, or None (module doc)."""
    for _ in range(SIZE_TRIES):
        size = int(rng.integers(SIZE_RANGE[0], SIZE_RANGE[1] + 1))
        resized = resize_digit(digit, size)
        r0, c0, r1, c1 = digit_box(resized)
        for _ in range(POSITION_TRIES):
            row, col = (int(v) for v in rng.integers(0, CANVAS - size + 1, size=2))
            box = (row + r0, col + c0, row + r1, col + c1)
            if all(overlap_ok(box, b) for b in boxes):
                return size, row, col, box, resized
    return None


def _stroke(dist: np.ndarray, width: float) -> np.ndarray:
    """Anti-aliased stroke profile of a distance map: 1 within width/2, falling to 0 over 1 px."""
    return np.clip(width / 2 + 0.5 - dist, 0.0, 1.0)


def _distractor(rng, kind: str, digits: np.ndarray) -> np.ndarray:
    """One distractor layer (64×64, float64) of `kind`, at its drawn contrast."""
    contrast = rng.uniform(*DISTRACTOR_CONTRAST)
    out = np.zeros((CANVAS, CANVAS))
    if kind == "crop":
        digit = digits[int(rng.integers(len(digits)))]
        w = int(rng.integers(CROP_RANGE[0], CROP_RANGE[1] + 1))
        rows, cols = np.nonzero(digit > 0.5 * digit.max())
        j = int(rng.integers(len(rows)))
        r = min(max(int(rows[j]) - w // 2, 0), DIGIT - w)
        c = min(max(int(cols[j]) - w // 2, 0), DIGIT - w)
        crop = np.rot90(digit[r:r + w, c:c + w], int(rng.integers(4)))
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        pr, pc = (int(v) for v in rng.integers(0, CANVAS - w + 1, size=2))
        out[pr:pr + w, pc:pc + w] = contrast * crop
        return out
    width = rng.uniform(*STROKE_WIDTH)
    if kind == "line":
        y0, x0 = rng.uniform(0, CANVAS, size=2)
        angle, length = rng.uniform(0, 2 * math.pi), rng.uniform(*LINE_LENGTH)
        dy, dx = length * math.sin(angle), length * math.cos(angle)
        t = np.clip(((_ROWS - y0) * dy + (_COLS - x0) * dx) / (length ** 2), 0.0, 1.0)
        dist = np.hypot(_ROWS - (y0 + t * dy), _COLS - (x0 + t * dx))
        return contrast * _stroke(dist, width)
    cy, cx = rng.uniform(8, CANVAS - 8, size=2)
    radius, start, span = rng.uniform(*ARC_RADIUS), rng.uniform(0, 2 * math.pi), rng.uniform(*ARC_SPAN)
    rho = np.hypot(_ROWS - cy, _COLS - cx)
    phi = np.mod(np.arctan2(_ROWS - cy, _COLS - cx) - start, 2 * math.pi)
    return contrast * _stroke(np.abs(rho - radius), width) * (phi <= span)


def _scene(rng, lo, hi, digits, by_class):
    """Everything of one scene: (background, digit layer, distractor layer, objects,
    number of distractors); objects = [(class, source, size, row, col, box, contrast)]."""
    background = _background(rng)
    k = int(rng.integers(lo, hi + 1))
    classes = [int(c) for c in rng.choice(N_CLASSES, size=k, replace=False)]
    sources = [int(by_class[c][rng.integers(len(by_class[c]))]) for c in classes]
    contrasts = rng.uniform(*CONTRAST_RANGE, size=k)
    for _ in range(PLACEMENT_RESTARTS):
        placed = []
        for src in sources:
            got = _place(rng, digits[src], [p[3] for p in placed])
            if got is None:
                break
            placed.append(got)
        else:
            break
    else:  # not met in practice: 4 digits of ≤ 36 px fit a 64-px canvas easily
        raise RuntimeError(f"could not place {k} digits with overlap ≤ {MAX_OVERLAP}")
    layer = np.zeros((CANVAS, CANVAS))
    objects, in_boxes = [], np.zeros((CANVAS, CANVAS), bool)
    for c, src, contrast, (size, row, col, box, resized) in zip(classes, sources, contrasts, placed):
        frame = layer[row:row + size, col:col + size]
        np.maximum(frame, contrast * resized, out=frame)
        in_boxes[box[0]:box[2], box[1]:box[3]] = True
        objects.append((c, src, size, row, col, box, float(contrast)))
    clutter = np.zeros((CANVAS, CANVAS))
    m = int(rng.integers(N_DISTRACTORS[0], N_DISTRACTORS[1] + 1))
    for _ in range(m):
        kind = DISTRACTOR_KINDS[int(rng.choice(len(DISTRACTOR_KINDS), p=DISTRACTOR_P))]
        for _ in range(DISTRACTOR_TRIES):
            patch = _distractor(rng, kind, digits)
            mass = patch.sum()
            if mass > 0 and patch[in_boxes].sum() <= MAX_DISTRACTOR_IN_BOXES * mass:
                break
        np.maximum(clutter, patch, out=clutter)
    return background, layer, clutter, objects, m


def make_clutter_layers(n: int, split: str = "train", seed: int = 0,
                        n_digits: tuple[int, int] = (2, 4), mnist: dict | None = None
                        ) -> tuple[Scenes, dict[str, np.ndarray]]:
    """`make_clutter_scenes` plus its three layers, {"background", "digits", "distractors"},
    each (n, 64, 64) float32; the images are their pixel-wise max (for tests and figures)."""
    return _generate(n, split, seed, n_digits, mnist, keep_layers=True)


def make_clutter_scenes(n: int, split: str = "train", seed: int = 0,
                        n_digits: tuple[int, int] = (2, 4), mnist: dict | None = None) -> Scenes:
    """Generate n cluttered scenes from the MNIST digits of `split` (module doc). `mnist`: the
    output of `mnist_halves.load()` when the caller already has it (else loaded, offline)."""
    return _generate(n, split, seed, n_digits, mnist, keep_layers=False)[0]


def _generate(n, split, seed, n_digits, mnist, keep_layers):
    lo, hi = _check(n, split, seed, n_digits)
    mnist = mnist if mnist is not None else mnist_halves.load(allow_download=False)
    digits = digit_images(mnist[split])
    by_class = [np.flatnonzero(mnist[split].y == c) for c in range(N_CLASSES)]
    children = np.random.SeedSequence([STREAM_TAG, int(seed), SPLITS.index(split), lo, hi]).spawn(n)

    images = np.zeros((n, 1, CANVAS, CANVAS), np.float32)
    labels = np.zeros((n, N_CLASSES), np.float32)
    boxes = np.full((n, N_CLASSES, 4), -1, np.int16)
    quadrant = np.full((n, N_CLASSES), -1, np.int8)
    source = np.full((n, N_CLASSES), -1, np.int64)
    size = np.full((n, N_CLASSES), -1, np.int16)
    position = np.full((n, N_CLASSES, 2), -1, np.int16)
    contrast = np.zeros((n, N_CLASSES), np.float32)
    n_distractors = np.zeros(n, np.int8)
    layers = {k: np.zeros((n, CANVAS, CANVAS), np.float32) for k in
              ("background", "digits", "distractors")} if keep_layers else None
    for i, child in enumerate(children):
        bg, dig, clutter, objects, m = _scene(np.random.default_rng(child), lo, hi, digits, by_class)
        images[i, 0] = np.clip(np.maximum(np.maximum(bg, dig), clutter), 0.0, 1.0)
        n_distractors[i] = m
        for c, src, s, row, col, box, con in objects:
            labels[i, c], quadrant[i, c], source[i, c] = 1.0, 0, src
            boxes[i, c], size[i, c], position[i, c], contrast[i, c] = box, s, (row, col), con
        if keep_layers:
            layers["background"][i], layers["digits"][i], layers["distractors"][i] = bg, dig, clutter
    scenes = Scenes(images, labels, boxes, quadrant, source, split, int(seed), (lo, hi),
                    digit_size=size, position=position, contrast=contrast,
                    n_distractors=n_distractors)
    return scenes, layers


def generation_params() -> dict:
    """Every constant of the procedure (read at call time), for the cache key."""
    return {"version": GENERATOR_VERSION, "stream": STREAM_TAG, "canvas": CANVAS, "digit": DIGIT,
            "size_range": list(SIZE_RANGE), "contrast": list(CONTRAST_RANGE),
            "max_overlap": MAX_OVERLAP, "threshold": MASK_REL_THRESHOLD,
            "tries": [POSITION_TRIES, SIZE_TRIES, PLACEMENT_RESTARTS],
            "noise_grids": list(NOISE_GRIDS), "noise_mix": list(NOISE_MIX),
            "grating_period": list(GRATING_PERIOD), "grating_mix": list(GRATING_MIX),
            "bg_hi": list(BG_HI), "bg_lo": list(BG_LO_FRACTION), "pixel_noise": PIXEL_NOISE,
            "n_distractors": list(N_DISTRACTORS), "distractor_kinds": list(DISTRACTOR_KINDS),
            "distractor_p": list(DISTRACTOR_P), "distractor_contrast": list(DISTRACTOR_CONTRAST),
            "crop": list(CROP_RANGE), "line": list(LINE_LENGTH), "arc_radius": list(ARC_RADIUS),
            "arc_span": list(ARC_SPAN), "stroke_width": list(STROKE_WIDTH),
            "max_in_boxes": MAX_DISTRACTOR_IN_BOXES, "distractor_tries": DISTRACTOR_TRIES}


def cache_key(n: int, split: str, seed: int, n_digits: tuple[int, int],
              mnist_dir: str | None) -> str:
    """Hash of every generation parameter (`generation_params`), n, split, seed, n_digits and
    the MNIST source (`mnist_dir`, or "default" for `mnist_halves.load`'s own source order)."""
    params = {**generation_params(), "kind": "clutter", "n": int(n), "split": split,
              "seed": int(seed), "n_digits": [int(v) for v in n_digits],
              "mnist": str(mnist_dir) if mnist_dir else "default"}
    return recipe_hash(params)


def load_clutter_scenes(n: int, split: str = "train", seed: int = 0,
                        n_digits: tuple[int, int] = (2, 4),
                        cache_dir: str | os.PathLike | None = None,
                        mnist_dir: str | os.PathLike | None = None) -> Scenes:
    """`make_clutter_scenes`, cached as an .npz under `cache_dir` (default
    `$MUC2M_CACHE/scenes`) named `clutter-{split}-n{n}-s{seed}-{cache_key}.npz`."""
    _check(n, split, seed, n_digits)
    mnist_dir = mnist_dir or os.environ.get("MNIST_DIR")
    name = f"clutter-{split}-n{n}-s{seed}-{cache_key(n, split, seed, n_digits, mnist_dir)}"
    return cached_scenes(name, lambda: make_clutter_scenes(
        n, split, seed, n_digits, mnist=mnist_halves.load(mnist_dir=mnist_dir,
                                                          allow_download=False)), cache_dir)
