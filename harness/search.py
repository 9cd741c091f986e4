"""The two-view search: configurations sampled from each method's ranges, the choice of one
per (method, d) on validation, and the check that it is not at the edge of its range.

Ray Tune runs the sampled trials and ASHA stops the poor ones early (`harness.tune`,
`PerCellASHA`); this module never imports Ray. The sampling is a Latin hypercube in log space
(scipy; a range marked "lin" is sampled uniformly): with a handful of trials it covers each range evenly where plain random draws
cluster, and it is seeded per (method, d), so a resumed sweep draws the same configurations.

What is chosen here is chosen on validation only: the best `val_corr_best` among the search
trials that ran their full budget (an early-stopped trial's number comes from fewer epochs).
The chosen configuration is then rerun with the reported seeds, which the search never used.
"""
from __future__ import annotations

import math
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


def sample(space: dict, n: int, seed: int) -> list[dict]:
    """n configurations {parameter: value} from a search space (a method's `search`)."""
    if not space or n < 1:
        return []
    from scipy.stats import qmc
    names = list(space)
    unit = qmc.LatinHypercube(d=len(names), seed=seed).random(n)
    return [{name: value_at(space[name], float(u)) for name, u in zip(names, row)}
            for row in unit]


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
    flagged = []
    for name, rng in spec.search.items():
        if name not in values:
            continue
        u = position(rng, float(values[name]))
        for end_u, bound in ((0.0, value_at(rng, 0.0)), (1.0, value_at(rng, 1.0))):
            if abs(u - end_u) <= EDGE_FRACTION and not natural_end(spec, name, bound):
                flagged.append(name)
                break
    return flagged


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
    def best(rows):
        rows = [r for r in rows if math.isfinite(float(r.metrics.get(metric, math.nan)))]
        return max(rows, key=lambda r: float(r.metrics[metric])) if rows else None
    return (best([r for r in records if r.status == "ok"])
            or best([r for r in records if r.status == "stopped"]))
