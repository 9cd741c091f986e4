"""Paired bootstrap statistics of the held-out correlation, for the tables' tie marks.

A reported trial keeps `N_BOOT` bootstrap replicates of its `corr_heldout`: the linear CCA is
fitted on the train outputs once (as `metrics.corr_heldout` fits it), the test outputs are
projected once, and replicate b sums the per-component Pearson correlations of the projected
test pairs resampled with replacement. The resamplings come from one fixed generator
(`BOOT_SEED`), so replicate b draws the same test pairs in every trial of every method: two
cells' replicates are paired, and their difference per replicate cancels the part of the
test-sampling noise that both share.

In the tables, a cell ties with the best of its d when the 95 % percentile interval, over b, of
the paired difference (mean over the seeds both cells have, of the cell's replicate b minus the
best's) contains 0 (`paired_interval`, `tied`).
"""
from __future__ import annotations

import numpy as np
import torch

from harness.linalg import LinearCCA, as_f64, center
from harness.metrics import HELDOUT_RIDGE

N_BOOT = 200
BOOT_SEED = 20261207  # one generator for every trial and method: what pairs the replicates
LEVEL = 0.95
DIGITS = 4            # replicates are stored rounded (sums of correlations, at most d)
COLUMN_CHUNK = 256    # components per weighted-moment product (bounds memory at large d)


def bootstrap_indices(n: int, n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> np.ndarray:
    """(n_boot, n) row indices, drawn with replacement: replicate b's resampled test pairs.
    The same (n, n_boot, seed) give the same indices on any machine."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def bootstrap_counts(n: int, n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> np.ndarray:
    """(n_boot, n): how many times replicate b draws each row (`bootstrap_indices` counted)."""
    idx = bootstrap_indices(n, n_boot, seed)
    flat = (np.arange(n_boot)[:, None] * n + idx).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n)


def resampled_correlations(p1, p2, n_boot: int = N_BOOT, seed: int = BOOT_SEED,
                           eps: float = 1e-12) -> np.ndarray:
    """(n_boot,): per replicate, the sum over columns of the Pearson correlations of p1's and
    p2's matching columns on the resampled rows. Computed as weighted moments (weights = the
    replicate's counts), one matrix product per moment, on p1's device in float64."""
    p1, p2 = as_f64(p1), as_f64(p2)
    n = p1.shape[0]
    # Pearson is shift invariant: centring on the whole test set first keeps the raw moments
    # below small, so their differences lose no digits
    p1, p2 = center(p1), center(p2)
    w = torch.from_numpy(bootstrap_counts(n, n_boot, seed)).to(p1.device, torch.float64)
    total = torch.zeros(n_boot, dtype=torch.float64, device=p1.device)
    for lo in range(0, p1.shape[1], COLUMN_CHUNK):
        a, b = p1[:, lo:lo + COLUMN_CHUNK], p2[:, lo:lo + COLUMN_CHUNK]
        ma, mb = (w @ a) / n, (w @ b) / n
        cov = (w @ (a * b)) / n - ma * mb
        var_a = ((w @ (a * a)) / n - ma * ma).clamp_min(0)
        var_b = ((w @ (b * b)) / n - mb * mb).clamp_min(0)
        # `pearson_per_dim`'s form: the eps guards a constant column
        total += (cov / ((var_a * var_b).sqrt() + eps / n)).sum(1)
    return total.cpu().numpy()


def heldout_replicates(train1, train2, test1, test2, k: int, n_boot: int = N_BOOT,
                       seed: int = BOOT_SEED, ridge: float = HELDOUT_RIDGE) -> np.ndarray:
    """(n_boot,) bootstrap replicates of `metrics.corr_heldout` over the test pairs: the CCA
    fitted on the train outputs (once), the test outputs projected (once), then
    `resampled_correlations` of the projections."""
    cca = LinearCCA.fit(train1, train2, k=k, ridge=ridge)
    p1, p2 = cca.transform(test1, test2)
    return resampled_correlations(p1, p2, n_boot, seed)


def stored(replicates) -> list[float]:
    """The replicates as a record keeps them: a list of floats to `DIGITS` decimals."""
    return [round(float(v), DIGITS) for v in replicates]


# ------------------------------------------------------------------------------------ tables
def paired_interval(cell: dict, best: dict, level: float = LEVEL) -> tuple[float, float] | None:
    """The `level` percentile interval over b of the paired difference, mean over the seeds
    both cells have of (cell's replicate b − best's replicate b). `cell`, `best`: seed ->
    replicates. None where it cannot be formed: no seed in common, or replicates of
    different lengths (other resamplings, not paired)."""
    seeds = sorted(set(cell) & set(best))
    if not seeds:
        return None
    a = [np.asarray(cell[s], dtype=float) for s in seeds]
    b = [np.asarray(best[s], dtype=float) for s in seeds]
    lengths = {len(x) for x in a + b}
    if len(lengths) != 1 or 0 in lengths:
        return None
    diff = (np.stack(a) - np.stack(b)).mean(axis=0)
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(diff, [tail, 100 - tail])
    return float(lo), float(hi)


def tied(cell: dict, best: dict, level: float = LEVEL) -> bool | None:
    """Whether the paired interval contains 0 (a tie); None where it cannot be formed."""
    interval = paired_interval(cell, best, level)
    return None if interval is None else interval[0] <= 0 <= interval[1]
