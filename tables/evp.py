"""Expected validation performance: the best validation score a search can expect after n of
its configurations, n = 1..N (Dodge et al. 2019, "Show your work").

From the N configurations' validation scores v, sorted ascending, the expected maximum of n
draws with replacement from their empirical distribution is

    E[max of n] = Σ_i v_(i) [ (i/N)^n − ((i−1)/N)^n ]

(the bracket is the probability that the largest of the n draws is the i-th value). At n = 1
it is the mean of the scores, and it rises to their maximum as n grows. The curve says what a
smaller search would have found: a method whose curve is still rising at N was searched too
little; two methods whose curves cross rank differently under a smaller budget.

A configuration's score is its `val_corr_best` at the highest rung of successive halving it
reached. A configuration stopped at a lower rung counts at that rung's score, below what it
would have reached with the full budget (a configuration's best validation correlation only
grows as it trains on), so each curve is a lower bound of the full-budget one. A configuration
with no finite validation score (every rung diverged) is left out.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness import report, search


def expected_max(values, n):
    """The expected maximum of `n` draws with replacement from `values` (a float for an int
    `n`, an array for an array of them). NaN values are left out; no values give NaN."""
    v = np.sort(np.asarray(values, dtype=float).ravel())
    v = v[~np.isnan(v)]
    ns = np.asarray(n, dtype=float)
    if np.any(ns < 1):
        raise ValueError(f"n must be ≥ 1, not {n!r}")
    if not len(v):
        return np.full(ns.shape, np.nan) if ns.ndim else float("nan")
    big = len(v)
    cdf = np.arange(big + 1) / big                    # (i/N), i = 0..N
    probs = cdf[None, 1:] ** ns.reshape(-1, 1) - cdf[None, :-1] ** ns.reshape(-1, 1)
    out = probs @ v
    return out.reshape(ns.shape) if ns.ndim else float(out[0])


def configuration_scores(searched: pd.DataFrame) -> pd.DataFrame:
    """One row per searched configuration (method, d, config): its `val_corr_best` at the
    highest rung it reached with a finite score (the most epochs trained; an early-stopped
    trial's `epochs_run`)."""
    columns = ["method", "d", "config", "score", "epochs"]
    if searched.empty or "val_corr_best" not in searched:
        return pd.DataFrame(columns=columns)
    ran = pd.to_numeric(searched.epochs, errors="coerce")
    if "epochs_run" in searched:
        stopped = searched.status == "stopped"
        ran = ran.where(~stopped, pd.to_numeric(searched.epochs_run, errors="coerce"))
    trials = pd.DataFrame({
        "method": searched.method.values, "d": searched.d.values,
        "config": [search.config_index(n) for n in searched["name"]],
        "score": pd.to_numeric(searched.val_corr_best, errors="coerce").values,
        "epochs": ran.values})
    trials = trials[np.isfinite(trials.score)]
    last = trials.sort_values(["method", "d", "config", "epochs"], kind="stable") \
        .groupby(["method", "d", "config"], sort=True).tail(1)
    return last[columns].reset_index(drop=True)


def curves(searched: pd.DataFrame) -> dict:
    """(method, d) -> expected best validation score after n = 1..N configurations."""
    scores = configuration_scores(searched)
    return {(method, d): expected_max(cell.score.values, np.arange(1, len(cell) + 1))
            for (method, d), cell in scores.groupby(["method", "d"], sort=True)}


CAPTION = ("expected best validation correlation after n configurations\n(a configuration "
           "stopped at a lower rung counts at its lower-rung score: a lower bound)")


def plot(searched: pd.DataFrame, out_path: Path, catalog=None, dpi: int = 100) -> Path | None:
    """evp.png: one panel per d, one line per method, the expected best validation score
    against the number of configurations tried; None (nothing written) without search
    trials. `catalog`: the methods' titles and row order (default: their names, sorted)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    by_cell = curves(searched)
    if not by_cell:
        return None
    dims = sorted({d for _, d in by_cell})
    order = (catalog.ordered if catalog is not None else sorted)({m for m, _ in by_cell})
    title = catalog.title if catalog is not None else str
    cols = min(4, len(dims))
    rows = int(np.ceil(len(dims) / cols))
    # at least 6 inches wide: the two-line caption fits over a single panel
    fig, axes = plt.subplots(rows, cols, figsize=(max(6, 4 * cols), 3.4 * rows),
                             squeeze=False)
    for ax, d in zip(axes.flat, dims):
        for i, method in enumerate(order):
            curve = by_cell.get((method, d))
            if curve is not None:
                ax.plot(np.arange(1, len(curve) + 1), curve, color=f"C{i}", marker=".",
                        label=title(method))
        ax.set_title(f"d={d}")
        ax.set_xlabel("configurations tried (n)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("expected best val_corr")
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(dims):]:
        ax.axis("off")
    fig.suptitle(CAPTION, fontsize=8)
    fig.tight_layout()
    return report.save_figure(fig, Path(out_path), dpi=dpi)
