"""Noisy MNIST (Wang et al. 2015, the DCCAE paper's benchmark), built from the offline
MNIST deterministically.

View 1: a digit rotated by an angle drawn uniformly from [−π/4, π/4] (bilinear, black fill).
View 2: a DIFFERENT image of the same class, from the same split, with independent noise drawn
uniformly from [0, 1] added to every pixel and the result clipped to [0, 1]. 784 pixels each,
float32 in [0, 1]. Splits 50k / 10k / 10k as MNIST halves (the offline copy's). Angles,
partners and noise come from `numpy.random.default_rng([seed, split])`.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from harness.data import mnist_halves
from harness.data.mnist_halves import TwoViews

SPLITS = ("train", "val", "test")


def full_images(halves: TwoViews) -> np.ndarray:
    """(n, 28, 28) from the left (columns 0–13) and right (14–27) halves."""
    n = len(halves)
    return np.concatenate([halves.x1.reshape(n, 28, 14), halves.x2.reshape(n, 28, 14)], axis=2)


def rotate(images: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Each (28, 28) image rotated by its angle (radians, counter-clockwise) about its centre."""
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[:, None]
    a = torch.from_numpy(np.asarray(angles, dtype=np.float32))
    cos, sin = torch.cos(a), torch.sin(a)
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros_like(a)], 1),
                         torch.stack([sin, cos, torch.zeros_like(a)], 1)], 1)
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    out = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros",
                                          align_corners=False)
    return out[:, 0].numpy()


def partners(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each i, a random j ≠ i with labels[j] == labels[i] (every class has ≥ 2 images)."""
    out = np.empty(len(labels), np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < 2:
            raise ValueError(f"class {c} has one image: no different image of the same class")
        shift = rng.integers(1, len(idx), size=len(idx))  # never 0: never the image itself
        out[idx] = idx[(np.arange(len(idx)) + shift) % len(idx)]
    return out


def build(mnist: dict[str, TwoViews], seed: int = 0) -> dict[str, TwoViews]:
    out = {}
    for code, split in enumerate(SPLITS):
        halves = mnist[split]
        images, labels = full_images(halves), halves.y
        rng = np.random.default_rng([seed, code])
        angles = rng.uniform(-math.pi / 4, math.pi / 4, size=len(images))
        view1 = rotate(images, angles).reshape(len(images), -1)
        other = partners(labels, rng)
        noise = rng.uniform(0.0, 1.0, size=(len(images), 784)).astype(np.float32)
        view2 = np.clip(images[other].reshape(len(images), -1) + noise, 0.0, 1.0)
        out[split] = TwoViews(np.ascontiguousarray(view1, np.float32),
                              np.ascontiguousarray(view2, np.float32), labels)
    return out


def load(mnist_dir=None, seed: int = 0) -> dict[str, TwoViews]:
    return build(mnist_halves.load(mnist_dir), seed)
