"""The two-view search: per (method, d), the method's reference configurations and
configurations sampled from its ranges, narrowed by synchronous successive halving, the
choice of one on validation, and the check that it is not at the edge of its range.

Successive halving (Jamieson & Talwalkar 2016; the synchronous form of Li et al.'s ASHA):
every configuration trains for the first rung's epochs; when all of a cell's configurations
have reported, the best third on validation (at least two) continue from their checkpoints to
the next rung, and so on to the full budget. A rung's promotions are decided only once all of
it has reported, from the ledger, so the selection is the same whatever order trials finish
in (`promote`). Ray runs each rung as one phase (`harness.sweep`); this module never imports
Ray.

The references are always searched, and successive halving carries them to the full budget
whatever they score at the low rungs (`planner.next_rung`): the method's registry defaults
(its authors' settings) and its declared `references` (e.g. cca-zoo's). The rest are a Latin hypercube in each
parameter's sampling coordinates (log, "1-" for one minus a log value, "lin" for uniform),
seeded per (method, d), so a resumed sweep draws the same configurations.

What is chosen here is chosen on validation only: the best `val_corr_best` among the
configurations that reached the full budget. The chosen configuration is then rerun with the
reported seeds, which the search never used.
"""
from __future__ import annotations

import math
import re
import zlib

EDGE_FRACTION = 0.05   # a selected value in the outer 5 % of its (log) range is flagged
SEARCH_SEED_BASE = 1000  # search trials' seeds: 1000 + i, disjoint from the reported 0, 1, 2


def _bounds(rng) -> tuple[float, float, str]:
    lo, hi, *kind = rng
    return float(lo), float(hi), kind[0] if kind else "log"


def value_at(rng, u: float) -> float:
    """The value at fraction u ∈ [0, 1] of a range: log-uniform, of 1 − value for "1-", or
    uniform for "lin" (a parameter such as an averaging weight, whose references sit at 0)."""
    lo, hi, kind = _bounds(rng)
    if kind == "lin":
        return lo + u * (hi - lo)
    x = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    return 1.0 - x if kind == "1-" else x


def position(rng, value: float) -> float:
    """Where `value` lies in its range, as the fraction u of `value_at` (0 = lo, 1 = hi)."""
    lo, hi, kind = _bounds(rng)
    if kind == "lin":
        return (value - lo) / (hi - lo)
    x = 1.0 - value if kind == "1-" else value
    return (math.log(max(x, 1e-300)) - math.log(lo)) / (math.log(hi) - math.log(lo))


def sample(space: dict, n: int, seed: int, fixed: list | tuple = (), slices=None) -> list[dict]:
    """n configurations {parameter: value} of a search space (a method's `search`): the
    `fixed` ones (the references) first, then a Latin hypercube for the rest; `slices`
    {parameter: (u_lo, u_hi)} keeps a parameter's samples to that part of its range."""
    if not space or n < 1:
        return []
    from scipy.stats import qmc
    names = list(space)
    fixed = [dict(f) for f in fixed][:n]
    if len(fixed) == n:
        return fixed
    unit = qmc.LatinHypercube(d=len(names), seed=seed).random(n - len(fixed))
    slices = slices or {}

    def at(name, u):
        a, b = slices.get(name, (0.0, 1.0))
        return value_at(space[name], a + float(u) * (b - a))
    return fixed + [{name: at(name, u) for name, u in zip(names, row)} for row in unit]


def references(spec, lr: float) -> list[dict]:
    """The configurations a search always tries: the method's defaults (its authors'
    settings, with the profile's learning rate), then its declared `references` (each
    completing the defaults), without repeats; only the searched parameters."""
    def values(overrides: dict) -> dict:
        base = {**spec.defaults, "lr": lr, **overrides}
        return {name: float(base[name]) for name in spec.search if name in base}
    out = []
    for config in [values({})] + [values(r) for r in getattr(spec, "references", ())]:
        if config and config not in out:
            out.append(config)
    return out


ETA = 3  # successive halving keeps the best 1/ETA of a rung (at least MIN_PROMOTED)
MIN_PROMOTED = 2  # so that every cell ends with at least two full-budget configurations


def rung_epochs(epochs: int, n_rungs: int = 3, eta: int = ETA) -> list[int]:
    """The epochs of each rung of a `epochs` budget: epochs/eta^(R-1), ..., epochs/eta, epochs
    (rounded up, at least one, without repeats)."""
    out = []
    for k in range(n_rungs - 1, -1, -1):
        value = max(1, math.ceil(epochs / eta ** k))
        if value not in out:
            out.append(value)
    return out


def n_promoted(n: int, eta: int = ETA) -> int:
    return min(n, max(MIN_PROMOTED, math.ceil(n / eta)))


def promote(records: list, keep: int, metric: str = "val_corr_best") -> list:
    """The `keep` best records of one rung of one cell on validation, in a fixed order:
    higher `metric` first, ties (and non-finite values, last) broken by the configuration's
    index. A function of the rung's records alone: the order they arrived in cannot matter."""
    def key(record):
        value = float(record.metrics.get(metric, math.nan)) if record.status == "ok" else math.nan
        return (0 if math.isfinite(value) else 1, -value if math.isfinite(value) else 0.0,
                config_index(record.name))
    return sorted(records, key=key)[:keep]


def config_index(name: str) -> int:
    """The configuration's index in its cell (`...,search=3,...]`)."""
    found = re.search(r"search=(\d+)", name)
    return int(found.group(1)) if found else 0


def cell_seed(method: str, d: int) -> int:
    """The sampler's seed of one (method, d): fixed, so --resume draws the same configs."""
    return zlib.crc32(f"{method}:{d}".encode())


def natural_end(spec, name: str, value: float) -> bool:
    """A range bound the parameter cannot go past (its valid range's end, e.g. ρ = 0): a
    selection there is not a sign that the range is too narrow."""
    if name == "lr" or name != spec.strength:
        return value <= 0.0
    lo, hi = spec.valid
    return math.isclose(value, lo, abs_tol=1e-12) or math.isclose(value, hi, rel_tol=1e-9)


def edge_flags(spec, values: dict) -> list[str]:
    """Names of the parameters whose selected value lies within EDGE_FRACTION of a bound of
    its range that is not a natural end: the optimum may lie outside the range."""
    return list(outer_ends(spec, values, EDGE_FRACTION))


WIDEN_FRACTION = 0.1  # a selection in the outer tenth of a range (sampling coordinates) ...
WIDEN_BY = 0.5        # ... extends that end by half the range's width and re-searches
MAX_WIDENINGS = 1     # rounds of widening per cell; an edge after them stays flagged


def outer_ends(spec, values: dict, fraction: float = WIDEN_FRACTION) -> dict:
    """{parameter: "lo" | "hi"} of the selected values that lie in the outer `fraction` of
    their range, at an end that is not a natural one: where a wider range may do better."""
    out = {}
    for name, rng in spec.search.items():
        if name not in values:
            continue
        u = position(rng, float(values[name]))
        for end, end_u in (("lo", 0.0), ("hi", 1.0)):
            if abs(u - end_u) <= fraction and not natural_end(spec, name, value_at(rng, end_u)):
                out[name] = end
    return out


def extended(rng, end: str, by: float = WIDEN_BY) -> tuple:
    """A range with its `end` moved out by `by` of its width in sampling coordinates (the
    same kind: log, "1-" or lin)."""
    lo, hi, kind = _bounds(rng)
    if kind == "lin":
        step = by * (hi - lo)
        return (lo - step, hi, kind) if end == "lo" else (lo, hi + step, kind)
    ratio = (hi / lo) ** by
    return (lo / ratio, hi, kind) if end == "lo" else (lo, hi * ratio, kind)


def widened(spec, values: dict, valid) -> dict:
    """The ranges of a re-search around a selection at an outer end: {parameter: (extended
    range, the slice to sample: (u_lo, u_hi) in the extended range's coordinates)} for each
    parameter whose end can move; `valid(name, value)` says whether a value can run (a move
    past it is halved, up to four times, then given up: that end is natural after all)."""
    out = {}
    for name, end in outer_ends(spec, values).items():
        by = WIDEN_BY
        for _ in range(5):
            rng = extended(spec.search[name], end, by)
            if valid(name, value_at(rng, 0.0 if end == "lo" else 1.0)):
                # only the new part is sampled: the old one has been searched
                share = by / (1 + by)
                out[name] = (rng, (0.0, share) if end == "lo" else (1 - share, 1.0))
                break
            by /= 2
    return out


def config_of(spec, values: dict) -> dict:
    """A trial configuration's search part: the strength, the other parameters and the lr."""
    config, overrides = {}, {}
    for name, value in values.items():
        if name == "lr":
            config["lr"] = float(value)
        elif name == spec.strength:
            config["strength"] = float(value)
        else:
            overrides[name] = float(value)
    if overrides:
        config["overrides"] = overrides
    return config


def values_of(spec, record) -> dict:
    """The searched values of a trial record (or table row dict), read back as floats."""
    get = (lambda k: record.get(k)) if isinstance(record, dict) else (lambda k: getattr(record, k))
    params = get("params") if not isinstance(record, dict) else {
        k[len("param_"):]: v for k, v in record.items() if k.startswith("param_")}
    out = {}
    for name in spec.search:
        value = get("lr") if name == "lr" else (params or {}).get(name)
        if value is not None and value != "":
            out[name] = float(value)
    return out


def choose(records: list, metric: str = "val_corr_best"):
    """The search record to rerun: the best `metric` among those that ran their full budget
    (status ok), else among the early-stopped ones; None when none has a finite value."""
    def best(rows):  # ties go to the lower configuration index, not to the first to arrive
        rows = [r for r in rows if math.isfinite(float(r.metrics.get(metric, math.nan)))]
        return min(rows, key=lambda r: (-float(r.metrics[metric]), config_index(r.name))) \
            if rows else None
    return (best([r for r in records if r.status == "ok"])
            or best([r for r in records if r.status == "stopped"]))
